"""Finance's month end to end in a real browser (issue 15): close, review a draft with a
variance flag, add a one-off line, finalize, mark one invoice paid by bank transfer, see
another go overdue, void and reissue one; a customer gets a styled 403 with a way back.
Real usage (ingestion, rollups, rating), so the reissue re-rates the period for real."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from billing.invoicing.drafting import periods_close
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice, InvoicePayment
from billing.invoicing.receivables import invoices_mark_overdue
from billing.services import org_rate
from tenancy.models import Membership, Org
from tenancy.services import staff_user_create

from ..billing.conftest import catalog, contract, gpu, ingest  # noqa: F401
from ..factories import MembershipFactory, UserFactory
from .conftest import login, shoot, wait_for_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
D = Decimal
OCT, NOV = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
NOV_CLOSE, DEC_CLOSE = datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)


def _month(settings, catalog):  # noqa: F811
    """October invoiced for acme (20 GPU-hours, 50.00) and globex (10, 25.00), due Dec 3;
    November rated: acme 80 GPU-hours (200.00, +300 %), globex 10 (25.00)."""
    settings.TESSERA_RATE_ON_ROLLUP = False
    catalog(contract(end=None), contract(key="globex-c", org="globex", end=None))
    ingest([gpu(h, "3600") for h in range(20)] + [gpu(h, "3600", org="globex") for h in range(10)])
    for org in Org.objects.all():
        org_rate(org=org, as_of=NOV_CLOSE)
    invoices_finalize(invoice_ids=periods_close(as_of=NOV_CLOSE).drafted_ids, as_of=NOV_CLOSE)
    ingest([gpu(h, "3600", n=1, day0=NOV) for h in range(80)]
           + [gpu(h, "3600", org="globex", n=1, day0=NOV) for h in range(10)])  # fmt: skip
    for org in Org.objects.all():
        org_rate(org=org, as_of=DEC_CLOSE)


def _click(browser, text):
    browser.find_element(By.XPATH, f"//button[normalize-space()='{text}']").click()


def _invoice_page(browser, base, invoice):
    browser.get(f"{base}/finance/invoices/{invoice.pk}/")


def test_finance_closes_its_month(browser, live_server, settings, catalog):  # noqa: F811
    _month(settings, catalog)
    acme_oct = Invoice.objects.get(org__slug="acme", period_start=OCT)
    globex_oct = Invoice.objects.get(org__slug="globex", period_start=OCT)
    staff_user_create(username="fin", role="finance", password="fin-pass-1234")
    base = live_server.url
    login(browser, base, "fin", "fin-pass-1234")

    # Close: both November periods are drafted.
    _click(browser, "Close periods and draft their invoices")
    wait_for_page(browser, lambda d: "Drafted 2 invoice" in d.page_source)
    shoot(browser, "finance-month-1-closed")

    # Review: the drafts list flags acme's draft; its page shows the variance per product.
    browser.get(f"{base}/finance/invoices/?status=draft")
    shoot(browser, "finance-month-2-drafts")
    acme_nov = Invoice.objects.get(org__slug="acme", period_start=NOV)
    row = browser.find_element(By.XPATH, f"//a[@href='/finance/invoices/{acme_nov.pk}/']/../..")
    assert "variance" in row.text
    _invoice_page(browser, base, acme_nov)
    assert "(+300.0%)" in browser.page_source
    assert "moved over 25%" in browser.page_source

    # A one-off line: a setup fee of 150.00 → 200.00 + 150.00 = 350.00, + 20 % = 420.00.
    browser.find_element(By.NAME, "description").send_keys("Setup fee, dedicated cluster")
    browser.find_element(By.CSS_SELECTOR, "input[aria-label='One-off amount']").send_keys("150.00")
    _click(browser, "Add one-off line")
    wait_for_page(browser, lambda d: "One-off line added" in d.page_source)
    shoot(browser, "finance-month-3-draft-review")
    assert Invoice.objects.get(pk=acme_nov.pk).total == D("420.00")

    # Finalize it.
    _click(browser, "Finalize")
    wait_for_page(browser, lambda d: "Finalized as TFR-2026-000003" in d.page_source)

    # Mark globex's October invoice paid by bank transfer.
    _invoice_page(browser, base, globex_oct)
    Select(browser.find_element(By.NAME, "method")).select_by_visible_text("Bank transfer")
    browser.find_element(By.NAME, "reference").send_keys("SEPA 2026-11-28 GLOBEX")
    _click(browser, "Mark paid")
    wait_for_page(browser, lambda d: "Payment of 30.00 USD recorded" in d.page_source)
    shoot(browser, "finance-month-4-paid")
    assert Invoice.objects.get(pk=globex_oct.pk).status == "paid"
    assert InvoicePayment.objects.get().reference == "SEPA 2026-11-28 GLOBEX"

    # The hourly beat job: acme's October invoice (due Dec 3, unpaid) goes overdue.
    assert invoices_mark_overdue() == [acme_oct.pk]
    browser.get(f"{base}/finance/receivables/")
    wait_for_page(browser, lambda d: "Overdue" in d.page_source)
    shoot(browser, "finance-month-5-receivables")
    assert acme_oct.number in browser.page_source

    # Void and reissue acme's November invoice: a new draft that names it, same charges.
    finalized = Invoice.objects.get(number="TFR-2026-000003")
    _invoice_page(browser, base, finalized)
    browser.find_element(By.CSS_SELECTOR, "input[aria-label='Reissue reason']").send_keys(
        "Setup fee belongs to December"
    )
    _click(browser, "Void and reissue")
    wait_for_page(browser, lambda d: "Voided and reissued" in d.page_source)
    assert "Replaces void invoice" in browser.page_source
    shoot(browser, "finance-month-6-reissued")
    reissued = Invoice.objects.get(org__slug="acme", period_start=NOV, status="draft")
    assert reissued.replaces_id == finalized.pk
    assert reissued.subtotal == D("200.00")  # re-rated from the usage; the one-off stays void
    _click(browser, "Finalize")
    wait_for_page(browser, lambda d: "Finalized as TFR-2026-000004" in d.page_source)

    browser.get(f"{base}/finance/audit/")
    shoot(browser, "finance-month-7-audit")
    actions = ("invoice.drafted", "invoice.one_off_added", "invoice.payment_recorded",
               "invoice.overdue", "invoice.void", "invoice.reissued", "periods.closed")  # fmt: skip
    for action in actions:
        assert action in browser.page_source, action
    assert "{'" not in browser.page_source  # no raw Python dicts

    # A customer on a finance page: a styled 403 with a way back.
    ada = UserFactory.create(username="ada")
    MembershipFactory.create(user=ada, org=Org.objects.get(slug="acme"), role=Membership.Role.OWNER)
    browser.delete_all_cookies()
    login(browser, base, "ada", "pw-for-tests-only")
    browser.get(f"{base}/finance/")
    assert "Not allowed" in browser.page_source
    assert browser.find_element(By.LINK_TEXT, "Back to your start page")
    shoot(browser, "finance-month-8-forbidden")
    browser.get(f"{base}/portal/")
    shoot(browser, "finance-month-9-portal")
    assert "Overdue" in browser.page_source
