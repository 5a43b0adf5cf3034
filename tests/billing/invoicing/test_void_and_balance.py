"""Void and reissue give the credits back and draw them again (SPEC §3 Credits); a negative
period is a zero invoice and a balance drawn first by the next invoice (SPEC §3 Invoice).
Amounts worked by hand in the comments."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from billing.invoicing.drafting import periods_close
from billing.invoicing.errors import InvoicingError
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice, InvoiceLine
from billing.invoicing.status import invoice_reissue, invoice_void
from billing.models import BillingPeriod, CreditDraw, CreditGrant
from billing.services import org_rate
from tenancy.models import Org

from .. import conftest as billing
from . import late_usage
from .conftest import DEC

D = Decimal


def invoice_finalize(*, invoice_id: int, as_of: datetime) -> Invoice:
    invoices_finalize(invoice_ids=[invoice_id], as_of=as_of)
    return Invoice.objects.get(pk=invoice_id)


OCT_CLOSE = datetime(2026, 10, 6, tzinfo=UTC)  # the 2-day period ends Oct 3, + 2 days grace


def _october_with_30_of_credits(catalog):
    # 20 GPU-hours of H100 at 2.50 = 50.00; a 30.00 grant covers 30.00 of it.
    catalog(billing.contract())
    acme = Org.objects.get(slug="acme")
    grant = CreditGrant.objects.create(
        org=acme, key="promo", amount=D("30.00"), balance=D("30.00"), currency="USD",
        effective=date(2026, 9, 1),
    )  # fmt: skip
    billing.ingest([billing.gpu(hour, "3600") for hour in range(20)])
    org_rate(org=acme, as_of=OCT_CLOSE)
    draft = periods_close(as_of=OCT_CLOSE).drafted[0]
    return grant, invoice_finalize(invoice_id=draft.pk, as_of=OCT_CLOSE)


def test_void_gives_the_30_of_credits_back_and_the_reissue_draws_them_again(catalog):
    grant, first = _october_with_30_of_credits(catalog)
    # subtotal 50.00 − credits 30.00 = 20.00, + 20% VAT 4.00 = 24.00
    assert (first.number, first.subtotal, first.credits, first.tax_total, first.total) == (
        "TFR-2026-000001", D("50.00"), D("30.00"), D("4.00"), D("24.00"))  # fmt: skip
    grant.refresh_from_db()
    assert grant.balance == D("0.00")

    voided = invoice_void(invoice_id=first.pk, reason="Wrong PO number")

    grant.refresh_from_db()
    period = BillingPeriod.objects.get(pk=first.period_id)
    assert voided.status == "void"
    assert grant.balance == D("30.00")  # back to what it was before the invoice
    # Ledger entries, not edits: the draw and its reversal.
    assert list(CreditDraw.objects.filter(grant=grant).values_list("amount", flat=True)) == [
        D("30.00"), D("-30.00")]  # fmt: skip
    assert period.status == "closing"  # reopened: it can be invoiced again

    draft = invoice_reissue(invoice_id=first.pk, reason="Wrong PO number")
    second = invoice_finalize(invoice_id=draft.pk, as_of=OCT_CLOSE + timedelta(days=1))

    grant.refresh_from_db()
    first.refresh_from_db()
    assert grant.balance == D("0.00")  # drawn again
    assert (second.number, second.credits, second.total) == (
        "TFR-2026-000002", D("30.00"), D("24.00"))  # fmt: skip
    assert second.replaces_id == first.pk
    assert first.replaced_by.pk == second.pk
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"invoice.void", "period.reopened", "invoice.reissued", "invoice.drafted"} <= actions


def test_a_period_reopened_by_void_is_drafted_again_by_the_close_run(catalog):
    grant, first = _october_with_30_of_credits(catalog)
    invoice_void(invoice_id=first.pk, reason="Duplicate")
    org_rate(org=Org.objects.get(slug="acme"), as_of=timezone.now())

    report = periods_close(as_of=timezone.now())

    (draft,) = report.drafted
    assert draft.replaces_id == first.pk
    assert draft.credits == D("30.00")
    assert Invoice.objects.filter(period_id=first.period_id).count() == 2


def test_void_needs_a_reason_and_changes_nothing_without_one(catalog):
    grant, first = _october_with_30_of_credits(catalog)
    with pytest.raises(InvoicingError, match="reason"):
        invoice_void(invoice_id=first.pk, reason="  ")
    grant.refresh_from_db()
    assert (Invoice.objects.get(pk=first.pk).status, grant.balance) == ("finalized", D("0.00"))
    assert BillingPeriod.objects.get(pk=first.period_id).status == "invoiced"


TIERS = [{"up_to": 100, "unit_price": "2.2632"}, {"up_to": None, "unit_price": "2.00"}]
VOLUME = {"key": "vol-usd", "currency": "USD", "effective_from": "2026-01-01",
          "prices": [{"product": "h100", "model": "volume", "tiers": TIERS}]}  # fmt: skip


def test_a_negative_period_is_a_zero_invoice_and_a_balance_the_next_invoice_draws(catalog):
    # Volume pricing: 100 GPU-hours in October at 2.2632 = 226.32, invoiced. Two late hours
    # re-price the whole volume lower: 102 × 2.00 = 204.00, i.e. −22.32 for October, billed on
    # November's invoice; November has no usage of its own.
    catalog(billing.contract(start="2026-10-01", end="2027-01-01", rate_card="vol-usd"),
            rate_cards=[*billing.CATALOG["rate_cards"], VOLUME])  # fmt: skip
    late_usage.gpu_hours("acme", late_usage.OCT, 100)
    (october,) = late_usage.bill(late_usage.NOV, "acme").drafted
    assert october.subtotal == D("226.32")
    late_usage.gpu_hours("acme", late_usage.OCT, 2, tag=1, now=late_usage.LATE)

    (november,) = late_usage.bill(DEC, "acme").drafted
    november.refresh_from_db()

    # The engine re-prices the whole volume: the old line reversed, the new one billed.
    lines = InvoiceLine.objects.filter(invoice=november).order_by("position")
    assert [(line.kind, line.quantity, line.amount) for line in lines] == [
        ("adjustment", D(-100), D("-226.32")), ("adjustment", D(102), D("204.00"))]  # fmt: skip
    # subtotal −22.32, carried 22.32 to the balance, no tax on a zero basis, total 0.00
    assert (november.subtotal, november.balance_carried, november.tax_total, november.total) == (
        D("-22.32"), D("22.32"), D("0.00"), D("0.00"))  # fmt: skip
    assert november.status == "paid"  # nothing to collect
    balance = CreditGrant.objects.get(source="balance")
    assert (balance.amount, balance.balance, balance.from_invoice_id) == (
        D("22.32"), D("22.32"), november.pk)  # fmt: skip

    # December: 10 GPU-hours at 2.2632 = 22.63; the balance is drawn first: 22.32.
    late_usage.gpu_hours("acme", DEC, 10)
    (december,) = late_usage.bill(late_usage.JAN, "acme").drafted
    december.refresh_from_db()

    balance.refresh_from_db()
    assert balance.balance == D("0.00")
    # 22.63 − 22.32 = 0.31 basis, + 20% VAT 0.062 → 0.06, total 0.37
    assert (december.subtotal, december.credits, december.tax_total, december.total) == (
        D("22.63"), D("22.32"), D("0.06"), D("0.37"))  # fmt: skip
