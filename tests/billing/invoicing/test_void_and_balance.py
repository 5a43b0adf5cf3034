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
from billing.invoicing.finalization import invoice_finalize
from billing.invoicing.models import Invoice, InvoiceLine
from billing.invoicing.status import invoice_reissue, invoice_void
from billing.models import BillingPeriod, CreditDraw, CreditGrant
from billing.rating.credits import credits_apply
from billing.services import org_rate
from tenancy.models import Org

from .. import conftest as billing
from . import stub_rating
from .conftest import AFTER_GRACE, DEC, NOV, Kind, rated_period
from .stub_rating import StubCharge

D = Decimal
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


@pytest.fixture
def _stub_rating(settings):
    settings.TESSERA_RERATE_PERIOD = "tests.billing.invoicing.stub_rating.compute_period_stub"
    stub_rating.RERATED.clear()


def _negative_november(world):
    # October: 100 GPU-hours at 2.50 = 250.00, invoiced. Then October's volume is re-priced
    # lower (2.2768): 227.68, i.e. −22.32, and November has no usage of its own.
    october = rated_period(world, charges=[(world.h100, Kind.ON_DEMAND, 0, "100", "2.50",
                                            "250.00")])  # fmt: skip
    invoice_finalize(invoice_id=periods_close(as_of=AFTER_GRACE).drafted[0].pk, as_of=AFTER_GRACE)
    stub_rating.RERATED[october.pk] = [
        StubCharge(world.h100, Kind.ON_DEMAND, 0, D("100"), D("2.2768"), D("227.68"))
    ]
    BillingPeriod.objects.filter(pk=october.pk).update(usage_changed_at=timezone.now())
    rated_period(world, contract=october.contract, start=NOV, end=DEC, charges=[])
    draft = periods_close(as_of=DEC + timedelta(days=2)).drafted[0]
    return october, invoice_finalize(invoice_id=draft.pk, as_of=DEC + timedelta(days=2))


@pytest.mark.usefixtures("_stub_rating")
def test_a_negative_period_is_a_zero_invoice_and_a_balance_the_next_invoice_draws(world):
    october, november = _negative_november(world)

    assert InvoiceLine.objects.get(invoice=november).amount == D("-22.32")
    # subtotal −22.32, carried 22.32 to the balance, no tax on a zero basis, total 0.00
    assert (november.subtotal, november.balance_carried, november.tax_total, november.total) == (
        D("-22.32"), D("22.32"), D("0.00"), D("0.00"))  # fmt: skip
    assert november.status == "paid"  # nothing to collect
    balance = CreditGrant.objects.get(source="balance")
    assert (balance.amount, balance.balance, balance.from_invoice_id) == (
        D("22.32"), D("22.32"), november.pk)  # fmt: skip

    # December: 10 GPU-hours, 25.00. A promotional grant exists too: the balance goes first.
    charges = [(world.h100, Kind.ON_DEMAND, 0, "10", "2.50", "25.00")]
    january = datetime(2027, 1, 1, tzinfo=UTC)
    december = rated_period(world, contract=october.contract, start=DEC, end=january,
                            charges=charges)  # fmt: skip
    CreditGrant.objects.create(org=december.org, key="promo", amount=D("100.00"),
                               balance=D("100.00"), currency="USD", effective=date(2026, 1, 1),
                               expires=date(2027, 6, 1))  # fmt: skip
    assert credits_apply(period=december, subtotal=D("25.00")) == D("25.00")
    draft = periods_close(as_of=datetime(2027, 1, 3, tzinfo=UTC)).drafted[0]
    invoice = invoice_finalize(invoice_id=draft.pk, as_of=datetime(2027, 1, 3, tzinfo=UTC))

    balance.refresh_from_db()
    assert balance.balance == D("0.00")  # the whole 22.32 used, before the grant
    assert CreditGrant.objects.get(key="promo").balance == D("97.32")  # 25.00 − 22.32 = 2.68
    # 25.00 − 25.00 credits = 0.00 basis, total 0.00
    assert (invoice.subtotal, invoice.credits, invoice.total) == (D("25.00"), D("25.00"), D("0"))
