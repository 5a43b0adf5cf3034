import io
import json
import zipfile
from datetime import date
from decimal import Decimal

import pytest
from django.test import Client

from audit.models import AuditEntry
from billing.invoicing.drafting import periods_close
from billing.invoicing.models import CreditNote, Invoice, InvoicePayment
from tenancy.models import Membership
from tenancy.services import staff_user_create

from ...factories import MembershipFactory, UserFactory
from ...support.invoicing import finalize
from ..invoicing.conftest import (  # noqa: F401
    AFTER_GRACE,
    DISCOUNTED_LLAMA,
    rated_period,
    worked_charges,
    world,
)


@pytest.fixture
def finance(db):
    client = Client()
    client.force_login(staff_user_create(username="fin", role="finance"))
    return client


@pytest.fixture
def drafts(world):  # noqa: F811
    rated_period(world, slug="acme", charges=worked_charges(world), list_prices=DISCOUNTED_LLAMA)
    rated_period(world, slug="globex", country="US", vat_id="", charges=worked_charges(world))
    periods_close(as_of=AFTER_GRACE)
    return list(Invoice.objects.order_by("org__slug"))


PAGES = ["/finance/", "/finance/invoices/", "/finance/stripe/", "/finance/audit/"]


@pytest.mark.parametrize("path", PAGES)
def test_finance_sees_every_page(finance, drafts, path):
    assert finance.get(path).status_code == 200


@pytest.mark.parametrize("role", ["account_manager", "operator"])
@pytest.mark.parametrize("path", [*PAGES, "/finance/export/?period=2026-10"])
def test_other_staff_get_403(db, drafts, role, path):
    client = Client()
    client.force_login(staff_user_create(username=role, role=role))

    assert client.get(path).status_code == 403


def test_customers_get_403_on_pages_and_actions(drafts):
    owner = UserFactory.create()
    MembershipFactory.create(user=owner, org=drafts[0].org, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(owner)

    assert client.get(f"/finance/invoices/{drafts[0].pk}/").status_code == 403
    assert client.post(f"/finance/invoices/{drafts[0].pk}/finalize/").status_code == 403
    assert client.post("/finance/close/").status_code == 403
    drafts[0].refresh_from_db()
    assert drafts[0].status == "draft"


def test_anonymous_goes_to_login(db):
    response = Client().get("/finance/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_review_a_draft_with_the_rated_charges_behind_each_line(finance, drafts):
    page = finance.get(f"/finance/invoices/{drafts[0].pk}/").content.decode()

    assert "Draft invoice" in page
    # The reservation line: its quantity and unit price read as on the PDF, and its charge.
    assert '<td class="num">5,952</td><td>GPU-hour</td><td class="num">2.10</td>' in page
    assert "5,952 × 2.10 = 12,499.20" in page
    # The Llama tier-1 line is at 10% off: its list price and discount stated under it.
    assert '<span class="muted">List price 1.00, 10% discount (-0.10)</span>' in page
    assert "1,000 × 0.90 = 900.00" in page
    assert "Finalize" in page


def test_finalize_several_drafts_at_once(finance, drafts):
    response = finance.post("/finance/invoices/finalize/", {"invoice": [str(i.pk) for i in drafts]})

    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert response.status_code == 302
    assert numbers == ["TFR-2026-000001", "TFR-2026-000002"]
    assert AuditEntry.objects.filter(action="invoice.finalized", actor="fin").count() == 2
    # The payment form offers what is outstanding at the currency's minor unit (issue 14).
    invoice = Invoice.objects.get(pk=drafts[0].pk)
    page = finance.get(f"/finance/invoices/{invoice.pk}/").content.decode()
    assert f'name="amount" placeholder="{invoice.total:.2f}"' in page


def test_close_button_drafts_ready_periods(finance, world):  # noqa: F811
    rated_period(world, slug="initech", charges=worked_charges(world))

    finance.post("/finance/close/")

    assert Invoice.objects.filter(org__slug="initech", status="draft").count() == 1


def test_void_needs_a_reason_and_is_logged(finance, drafts):
    invoice = finalize(drafts[0].pk)

    finance.post(f"/finance/invoices/{invoice.pk}/void/", {"reason": ""})
    invoice.refresh_from_db()
    assert invoice.status == "finalized"
    finance.post(f"/finance/invoices/{invoice.pk}/void/", {"reason": "issued twice by mistake"})
    invoice.refresh_from_db()

    assert (invoice.status, invoice.status_reason) == ("void", "issued twice by mistake")
    assert AuditEntry.objects.get(action="invoice.void").changes["reason"] == (
        "issued twice by mistake"
    )


def test_partial_credit_note_by_line(finance, drafts):
    invoice = finalize(drafts[0].pk)
    burst = invoice.lines.get(kind="burst")

    finance.post(
        f"/finance/invoices/{invoice.pk}/credit-note/",
        {"scope": "lines", f"line-{burst.pk}": "29.40", "reason": "burst was our outage"},
    )

    note = CreditNote.objects.get()
    assert note.subtotal == Decimal("29.40")
    assert note.total == Decimal("35.28")  # + 20% FR VAT
    assert note.number == "TFR-CN-2026-000001"


def test_exports_json_csv_and_a_zip_of_pdfs(finance, drafts):
    for invoice in drafts:
        finalize(invoice.pk)

    as_json = finance.get("/finance/export/?period=2026-10&format=json")
    as_csv = finance.get("/finance/export/?period=2026-10&format=csv")
    as_zip = finance.get("/finance/export/?period=2026-10&format=zip")

    rows = json.loads(as_json.content)
    assert [r["number"] for r in rows] == ["TFR-2026-000001", "TFR-2026-000002"]
    assert as_csv.content.decode().splitlines()[0].startswith("number,")
    names = zipfile.ZipFile(io.BytesIO(as_zip.content)).namelist()
    assert names == ["TFR-2026-000001.pdf", "TFR-2026-000002.pdf"]


def test_every_form_needs_its_csrf_token(drafts):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user_create(username="fin2", role="finance"))

    assert client.post("/finance/close/").status_code == 403
    assert client.post(f"/finance/invoices/{drafts[0].pk}/finalize/").status_code == 403
    drafts[0].refresh_from_db()
    assert drafts[0].status == "draft"


def test_payments_needing_attention_show_their_amount_at_the_minor_unit(finance, drafts):
    invoice = drafts[0]
    InvoicePayment.objects.create(
        org=invoice.org, invoice=invoice, amount=Decimal("428.4400"), currency=invoice.currency,
        paid_on=date(2026, 12, 1), method="stripe", reference="pi_1", recorded_by="stripe",
        attention="paid after the invoice was voided",
    )  # fmt: skip

    for url in ("/finance/", "/finance/receivables/"):
        page = finance.get(url).content.decode()
        assert '<td class="num">428.44 USD</td>' in page, url


def test_a_void_invoice_has_no_e_invoice_and_is_left_out_of_the_export(finance, drafts):
    for invoice in drafts:
        finalize(invoice.pk)
    void, payable = (Invoice.objects.get(pk=i.pk) for i in drafts)
    finance.post(f"/finance/invoices/{void.pk}/void/", {"reason": "issued twice by mistake"})
    void.refresh_from_db()

    page = finance.get(f"/finance/invoices/{void.pk}/").content.decode()
    refused = finance.get(f"/finance/invoices/{void.pk}/facturx")
    pdf = finance.get(f"/finance/invoices/{void.pk}/pdf")
    as_json = json.loads(finance.get("/finance/export/?period=2026-10&format=json").content)
    as_zip = finance.get("/finance/export/?period=2026-10&format=facturx")

    assert void.status == "void"
    assert void.status_changed_at is not None
    assert f"/finance/invoices/{void.pk}/pdf" in page
    assert f"/finance/invoices/{void.pk}/facturx" not in page
    assert refused.status_code == 409
    assert f"void on {void.status_changed_at.date().isoformat()}" in refused.content.decode()
    assert (pdf.status_code, pdf.content[:5]) == (200, b"%PDF-")
    assert [r["number"] for r in as_json] == [payable.number]
    assert zipfile.ZipFile(io.BytesIO(as_zip.content)).namelist() == [f"{payable.number}.pdf"]
