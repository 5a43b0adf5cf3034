"""Receivables (SPEC §5): open, partial, paid by hand, overdue, aged; draft review: discard,
one-off lines, re-rate, variance; close_periods refuses future periods without --force;
finalize_invoices counts what it finalized."""

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEntry
from billing.invoicing.drafting import periods_close
from billing.invoicing.errors import InvoicingError
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice, InvoiceLine, InvoicePayment
from billing.invoicing.receivables import (
    invoice_outstanding,
    invoice_payment_record,
    invoices_mark_overdue,
    receivables_aged,
)
from billing.invoicing.review import invoice_add_one_off, invoice_discard, invoice_variance
from billing.models import BillingPeriod
from tenancy.models import Org

from .conftest import AFTER_GRACE, DEC, NOV, Kind, rated_period

D = Decimal


def invoice_finalize(*, invoice_id: int, as_of: datetime) -> Invoice:
    invoices_finalize(invoice_ids=[invoice_id], as_of=as_of)
    return Invoice.objects.get(pk=invoice_id)


@pytest.fixture
def issued(world):
    # 100 GPU-hours at 2.50 = 250.00 + 20% VAT = 300.00, due 30 days after Nov 3: Dec 3.
    rated_period(world, charges=[(world.h100, Kind.ON_DEMAND, 0, "100", "2.50", "250.00")])
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    return invoice_finalize(invoice_id=draft.pk, as_of=AFTER_GRACE)


def test_a_bank_transfer_in_two_parts_pays_the_invoice(issued):
    assert (issued.total, issued.due_date) == (D("300.00"), date(2026, 12, 3))
    invoice_payment_record(invoice_id=issued.pk, amount="100.00", paid_on=date(2026, 11, 20),
                           reference="SEPA 4411")  # fmt: skip
    assert Invoice.objects.get(pk=issued.pk).status == "finalized"  # partial: still open
    assert invoice_outstanding(invoice=issued) == D("200.00")

    invoice_payment_record(invoice_id=issued.pk, amount=None, paid_on=date(2026, 11, 28),
                           reference="SEPA 4502")  # fmt: skip

    invoice = Invoice.objects.get(pk=issued.pk)
    assert (invoice.status, invoice.status_reason) == ("paid", "Bank transfer SEPA 4502")
    assert [p.amount for p in InvoicePayment.objects.order_by("pk")] == [D("100.00"), D("200.00")]
    assert AuditEntry.objects.filter(action="invoice.payment_recorded").count() == 2


@pytest.mark.parametrize(
    ("amount", "reference", "code"),
    [("400.00", "x", "overpayment"), ("-5", "x", "invalid_amount"), ("1.001", "x",
     "amount_precision"), ("abc", "x", "invalid_amount"), ("10", " ", "reference_required")],
)  # fmt: skip
def test_bad_payments_are_refused_and_record_nothing(issued, amount, reference, code):
    with pytest.raises(InvoicingError) as error:
        invoice_payment_record(invoice_id=issued.pk, amount=amount, paid_on=date(2026, 11, 20),
                               reference=reference)  # fmt: skip
    assert error.value.code == code
    assert not InvoicePayment.objects.exists()
    assert Invoice.objects.get(pk=issued.pk).status == "finalized"


def test_overdue_after_the_due_date_once_and_aged_in_its_bucket(issued):
    assert invoices_mark_overdue(as_of=datetime(2026, 12, 3, 12, tzinfo=UTC)) == []  # due today
    assert invoices_mark_overdue(as_of=datetime(2026, 12, 4, tzinfo=UTC)) == [issued.pk]
    assert invoices_mark_overdue(as_of=datetime(2026, 12, 5, tzinfo=UTC)) == []  # once
    assert Invoice.objects.get(pk=issued.pk).status == "overdue"
    assert AuditEntry.objects.filter(action="invoice.overdue").count() == 1
    invoice_payment_record(invoice_id=issued.pk, amount="50.00", paid_on=date(2026, 12, 5),
                           reference="SEPA 1")  # fmt: skip

    (usd,) = receivables_aged(orgs=Org.objects.all(), as_of=date(2027, 1, 10))

    # 38 days past due: 300.00 − 50.00 in the 31–60 bucket
    assert dict(usd.bucket_list) == {"current": D(0), "1-30": D(0), "31-60": D("250.00"),
                                     "61-90": D(0), "90+": D(0)}  # fmt: skip


def test_discard_returns_the_period_to_closing_and_the_next_close_drafts_it(world):
    rated_period(world, charges=[(world.h100, Kind.ON_DEMAND, 0, "100", "2.50", "250.00")])
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]

    period = invoice_discard(invoice_id=draft.pk, reason="Price fix pending")

    assert period.status == "closing"
    assert not Invoice.objects.filter(pk=draft.pk).exists()
    assert len(periods_close(as_of=AFTER_GRACE).drafted) == 1
    assert AuditEntry.objects.filter(action="invoice.draft_discarded").count() == 1


def test_one_off_lines_change_the_totals_and_refuse_bad_input(world):
    rated_period(world, charges=[(world.h100, Kind.ON_DEMAND, 0, "100", "2.50", "250.00")])
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]

    invoice_add_one_off(invoice_id=draft.pk, amount="150.00", description="Setup fee")
    invoice_add_one_off(invoice_id=draft.pk, amount="-20.00", description="Goodwill credit")
    for amount, description, code in [("0", "x", "invalid_amount"), ("1", "", "reason_required"),
                                      ("1.005", "x", "amount_precision")]:  # fmt: skip
        with pytest.raises(InvoicingError) as error:
            invoice_add_one_off(invoice_id=draft.pk, amount=amount, description=description)
        assert error.value.code == code

    invoice = Invoice.objects.get(pk=draft.pk)
    # 250.00 + 150.00 − 20.00 = 380.00, + 20% = 456.00
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        D("380.00"), D("76.00"), D("456.00"))  # fmt: skip
    one_offs = InvoiceLine.objects.filter(invoice=invoice, kind="one_off")
    assert list(one_offs.values_list("description", "amount")) == [
        ("Setup fee", D("150.00")), ("Goodwill credit", D("-20.00"))]  # fmt: skip
    final = invoice_finalize(invoice_id=draft.pk, as_of=AFTER_GRACE)
    with pytest.raises(InvoicingError, match="only a draft"):
        invoice_add_one_off(invoice_id=final.pk, amount="1", description="late")


def test_variance_flags_a_product_that_moved_more_than_the_threshold(world, settings):
    settings.TESSERA_VARIANCE_FLAG_PERCENT = "25"
    october = rated_period(world, charges=[
        (world.h100, Kind.ON_DEMAND, 0, "100", "2.50", "250.00"),
        (world.llama, Kind.ON_DEMAND, 0, "10", "0.90", "9.00")])  # fmt: skip
    invoice_finalize(invoice_id=periods_close(as_of=AFTER_GRACE).drafted[0].pk, as_of=AFTER_GRACE)
    rated_period(world, contract=october.contract, start=NOV, end=DEC, charges=[
        (world.h100, Kind.ON_DEMAND, 0, "400", "2.50", "1000.00"),
        (world.llama, Kind.ON_DEMAND, 0, "11", "0.90", "9.90")])  # fmt: skip
    november = periods_close(as_of=DEC + timedelta(days=2)).drafted[0]

    previous, rows = invoice_variance(invoice=november)

    assert previous is not None
    assert previous.number == "TFR-2026-000001"
    table = {r.label: (r.previous, r.amount, r.change_percent, r.flagged) for r in rows}
    assert table == {
        "NVIDIA H100 GPU-hour, eu-north": (D("250.00"), D("1000.00"), D("300.0"), True),
        "Llama 3.1 70B input, 1M tokens": (D("9.00"), D("9.90"), D("10.0"), False),
    }


def test_close_periods_refuses_a_future_as_of_without_force(world):
    january = datetime(2027, 1, 1, tzinfo=UTC)
    charges = [(world.h100, Kind.ON_DEMAND, 0, "1", "2.50", "2.50")]
    rated_period(world, start=DEC, end=january, charges=charges)
    with pytest.raises(CommandError, match="--force"):
        call_command("close_periods", "--as-of", "2027-01-04", stdout=io.StringIO())
    assert not Invoice.objects.exists()
    assert BillingPeriod.objects.get().status == "closing"

    out = io.StringIO()
    call_command("close_periods", "--as-of", "2027-01-04", "--force", stdout=out)
    assert "1 draft invoice(s) created" in out.getvalue()


def test_finalize_invoices_counts_what_it_finalized(world):
    rated_period(world, charges=[(world.h100, Kind.ON_DEMAND, 0, "1", "2.50", "2.50")])
    periods_close(as_of=AFTER_GRACE)
    out = io.StringIO()
    call_command("finalize_invoices", "--as-of", "2026-11-03", stdout=out)
    assert "1 invoice(s) finalized." in out.getvalue()
    out = io.StringIO()
    call_command("finalize_invoices", "--as-of", "2026-11-03", stdout=out)
    assert "0 invoice(s) finalized." in out.getvalue()


def test_mark_overdue_command(issued):
    out = io.StringIO()
    call_command("mark_overdue", "--as-of", "2026-12-04", stdout=out)
    assert "1 invoice(s) now overdue." in out.getvalue()
    assert Invoice.objects.get(pk=issued.pk).status == "overdue"
