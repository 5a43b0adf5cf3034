"""The finance console's alerts (any org) and webhooks (platform and org endpoints, replay)."""

import pytest
from django.test import Client

from billing.alerts.models import Alert
from tenancy.models import Membership
from tenancy.services import staff_user_create
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_event_emit

from ...factories import MembershipFactory, OrgFactory, UserFactory


@pytest.fixture
def finance(db, settings):
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True
    client = Client()
    client.force_login(staff_user_create(username="fin", role="finance"))
    return client


def test_finance_sets_an_alert_for_any_org(finance):
    OrgFactory.create(slug="acme", currency="EUR")
    response = finance.post(
        "/finance/alerts/new", {"org": "acme", "kind": "credits_below", "threshold": "250"}
    )
    assert response.status_code == 302
    alert = Alert.objects.get()
    assert (alert.org.slug, alert.currency, alert.threshold) == ("acme", "EUR", 250)
    page = finance.get("/finance/alerts").content.decode()
    assert "Credits left below an amount" in page
    assert "€" in page  # the threshold in its currency
    refused = finance.post("/finance/alerts/new", {"org": "acme", "kind": "cost_above"})
    assert refused.status_code == 302
    assert Alert.objects.count() == 1  # the error is a message, nothing stored


def test_finance_adds_a_platform_endpoint_and_replays_a_delivery(finance):
    acme = OrgFactory.create(slug="acme")
    created = finance.post("/finance/webhooks/new", {"url": "http://127.0.0.1:9/erp"})
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.org is None
    assert created["Location"] == f"/finance/webhooks/{endpoint.pk}"
    webhook_event_emit(org=acme, type="invoice.finalized", data={"number": "TFR-1"})
    delivery = WebhookDelivery.objects.get()
    page = finance.get(created["Location"]).content.decode()
    assert "invoice.finalized" in page
    assert endpoint.secrets.get().secret in page
    assert finance.post(f"/finance/webhooks/deliveries/{delivery.pk}/replay").status_code == 302
    delivery.refresh_from_db()
    assert delivery.replayed_at is not None


def test_customers_and_operators_are_kept_out_where_they_should_be(db):
    acme = OrgFactory.create(slug="acme")
    customer = UserFactory.create()
    MembershipFactory.create(org=acme, user=customer, role=Membership.Role.OWNER)
    client, operator = Client(), Client()
    client.force_login(customer)
    operator.force_login(staff_user_create(username="ops", role="operator"))
    assert client.get("/finance/alerts").status_code == 403
    assert client.get("/finance/webhooks").status_code == 403
    assert operator.get("/finance/webhooks").status_code == 200  # platform endpoints
    assert operator.get("/finance/alerts").status_code == 403  # alerts are finance's
    refused = operator.post("/finance/webhooks/new", {"org": "acme", "url": "http://x.test/"})
    assert refused.status_code == 403
    assert not WebhookEndpoint.objects.exists()
