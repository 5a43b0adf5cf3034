"""Portal: cost per day, filters, price list, invoiced periods, alerts and webhooks pages."""

from datetime import UTC, datetime, timedelta

from django.test import Client

from billing.alerts.models import Alert, AlertFiring
from billing.invoicing.drafting import invoice_draft
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice
from billing.invoicing.status import invoice_void
from billing.models import BillingPeriod
from billing.services import org_rate
from tenancy.models import Membership
from webhooks.models import WebhookDelivery, WebhookEndpoint

from ..factories import MembershipFactory, UserFactory
from ..support.fx import ecb_rates
from .test_portal import acme  # noqa: F401 - the fixture with two rated days of November

NNBSP, NBSP = "\u202f", "\u00a0"  # French grouping and unit separators (CLDR)


def member(org, role):
    user = UserFactory.create(email="ada@acme.example")
    MembershipFactory.create(org=org, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_amounts_are_marked_excl_vat_and_formatted_in_the_orgs_locale(acme):  # noqa: F811
    page = member(acme, Membership.Role.VIEWER).get("/portal/").content.decode()
    assert "Cost per day, USD excl. VAT" in page
    # H100: 8 reserved × 2.10 × 48 h + 2 burst × 2.40 × 48 h, in fr_FR as "1 036,80 $US"
    assert f"1{NNBSP}036,80{NBSP}$US" in page  # the H100 line: 806.40 + 230.40
    assert "299.142857" not in page


def test_date_range_and_dimension_filters(acme):  # noqa: F811
    client = member(acme, Membership.Role.VIEWER)
    one_day = client.get("/portal/", {"from": "2026-11-02", "to": "2026-11-02"}).content.decode()
    assert 'value="2026-11-02"' in one_day
    assert "Nov 01</text>" not in one_day
    assert "Nov 02" in one_day
    h100_only = client.get("/portal/", {"filter.gpu_model": "H100"}).content.decode()
    assert "NVIDIA H100" in h100_only
    assert "Usage per day, 1M tokens" not in h100_only  # token products have no gpu_model
    csv = client.get("/portal/usage.csv", {"filter.model": "llama-3.1-70b"}).content.decode()
    assert "h100-eu-north" not in csv
    assert "llama-70b-input" in csv


def test_the_price_list_shows_contract_prices_reservations_and_discounts(acme):  # noqa: F811
    page = member(acme, Membership.Role.VIEWER).get("/portal/prices").content.decode()
    assert "Contract acme-2026" in page
    assert "in force" in page
    assert f"10{NBSP}% off" in page  # the H100 discount
    assert f"2,25{NBSP}$US / GPU-hour" in page  # 2.50 less 10 %
    assert "custom price" in page  # llama output at 1.05
    assert f"20{NNBSP}000,00{NBSP}$US" in page  # the minimum spend per period
    assert "from 2027-02-01: 16" in page  # the ramp


def test_an_invoiced_period_says_invoiced_and_has_no_forecast(acme):  # noqa: F811
    org_rate(org=acme, as_of=datetime(2026, 12, 1, tzinfo=UTC))
    period = BillingPeriod.objects.get(org=acme, start=datetime(2026, 11, 1, tzinfo=UTC))
    invoice, _ = invoice_draft(period_id=period.pk, as_of=datetime(2026, 12, 4, tzinfo=UTC))
    assert invoice is not None
    finalized(invoice.pk, datetime(2026, 12, 4, tzinfo=UTC))
    page = (
        member(acme, Membership.Role.VIEWER).get("/portal/", {"period": period.pk}).content.decode()
    )
    assert '<div class="label">Invoiced</div>' in page
    assert "invoice TFR-2026-000001" in page
    assert "Forecast" not in page
    assert "Cost so far" not in page


def test_owners_set_alerts_in_the_portal_and_viewers_see_them(acme):  # noqa: F811
    owner = member(acme, Membership.Role.OWNER)
    owner.post(
        "/portal/alerts/new",
        {"org": "acme", "kind": "cost_above", "threshold": "500", "name": "Budget"},
    )
    alert = Alert.objects.get()
    viewer = member(acme, Membership.Role.VIEWER)
    refused = viewer.post(f"/portal/alerts/{alert.pk}/delete", {"org": "acme"})
    assert refused.status_code == 403
    # the next rating crosses it: the dashboard shows it, the alerts page lists it
    org_rate(org=acme, as_of=datetime(2026, 11, 3, tzinfo=UTC) + timedelta(hours=1))
    firing = AlertFiring.objects.get()
    assert "Budget" in viewer.get("/portal/alerts").content.decode()
    assert firing.message in viewer.get("/portal/").content.decode()
    assert "Set alert" not in viewer.get("/portal/alerts").content.decode()


def test_owners_add_endpoints_see_deliveries_and_replay(acme, settings):  # noqa: F811
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True
    owner = member(acme, Membership.Role.OWNER)
    created = owner.post(
        "/portal/webhooks/new",
        {"org": "acme", "url": "http://127.0.0.1:9/hook", "events": ["alert.triggered"]},
    )
    endpoint = WebhookEndpoint.objects.get()
    assert created["Location"] == f"/portal/webhooks/{endpoint.pk}?org=acme"
    page = owner.get(created["Location"]).content.decode()
    assert endpoint.secrets.get().secret in page
    viewer_page = member(acme, Membership.Role.VIEWER).get(created["Location"]).content.decode()
    assert endpoint.secrets.get().secret not in viewer_page
    assert "Rotate secret" not in viewer_page
    from webhooks.services import webhook_event_emit

    webhook_event_emit(org=acme, type="alert.triggered", data={"x": 1})
    delivery = WebhookDelivery.objects.get()
    replay = owner.post(f"/portal/webhooks/deliveries/{delivery.pk}/replay", {"org": "acme"})
    assert replay.status_code == 302
    delivery.refresh_from_db()
    assert delivery.replayed_at is not None


def finalized(invoice_id, as_of):
    ecb_rates()  # acme's USD invoice from the French issuer states its VAT in EUR
    invoices_finalize(invoice_ids=[invoice_id], as_of=as_of)
    return Invoice.objects.get(pk=invoice_id)


def test_a_void_invoice_offers_its_pdf_but_no_e_invoice(acme):  # noqa: F811
    org_rate(org=acme, as_of=datetime(2026, 12, 1, tzinfo=UTC))
    period = BillingPeriod.objects.get(org=acme, start=datetime(2026, 11, 1, tzinfo=UTC))
    invoice, _ = invoice_draft(period_id=period.pk, as_of=datetime(2026, 12, 4, tzinfo=UTC))
    assert invoice is not None
    finalized(invoice.pk, datetime(2026, 12, 4, tzinfo=UTC))
    client = member(acme, Membership.Role.VIEWER)
    before = client.get("/portal/").content.decode()
    invoice_void(invoice_id=invoice.pk, reason="billed twice")

    page = client.get("/portal/").content.decode()
    refused = client.get(f"/api/v1/invoices/{invoice.pk}/facturx")

    assert f"/api/v1/invoices/{invoice.pk}/facturx" in before
    assert f"/api/v1/invoices/{invoice.pk}/pdf" in page
    assert f"/api/v1/invoices/{invoice.pk}/facturx" not in page
    assert f"/api/v1/invoices/{invoice.pk}/xrechnung" not in page
    assert refused.status_code == 409
    assert "it is no longer payable" in refused.json()["message"]
