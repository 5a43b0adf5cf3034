"""Credit notes: the legal correction of a finalized invoice, with their own numbers."""

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing.invoicing.credit_notes import CreditRequest, credit_note_issue
from billing.invoicing.drafting import periods_close
from billing.invoicing.errors import InvoicingError
from billing.invoicing.models import InvoiceLine

from ...support.invoicing import finalize
from .conftest import AFTER_GRACE, rated_period, worked_charges

NOV_20 = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def invoice(world):
    rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    return finalize(draft.pk, as_of=AFTER_GRACE)


def _line(invoice, kind, amount):
    return InvoiceLine.objects.get(invoice=invoice, kind=kind, amount=Decimal(amount))


def test_a_full_credit_note_cancels_lines_credits_and_tax(invoice):
    note = credit_note_issue(invoice_id=invoice.pk, reason="Billed twice", as_of=NOV_20)

    assert note.number == "TFR-CN-2026-000001"
    assert (note.subtotal, note.credits, note.tax_total, note.total) == (
        invoice.subtotal, invoice.credits, invoice.tax_total, invoice.total)  # fmt: skip
    assert note.lines.count() == 4  # the 0.00 covered line is not credited


def test_partial_credit_notes_by_line_are_capped_at_what_is_left(invoice):
    burst = _line(invoice, "burst", "29.40")
    llama = _line(invoice, "on_demand", "900.00")

    first = credit_note_issue(
        invoice_id=invoice.pk,
        reason="Burst during our outage",
        lines=[CreditRequest(burst.pk), CreditRequest(llama.pk, quantity=Decimal("100"))],
        as_of=NOV_20,
    )
    # 29.40 + 100 × 0.90 = 119.40; VAT 20% = 23.88
    assert (first.subtotal, first.tax_total, first.total) == (
        Decimal("119.40"), Decimal("23.88"), Decimal("143.28"))  # fmt: skip
    with pytest.raises(InvoicingError) as exceeded:
        credit_note_issue(invoice_id=invoice.pk, reason="again",
                          lines=[CreditRequest(burst.pk, amount=Decimal("0.01"))])  # fmt: skip
    assert exceeded.value.code == "credit_exceeds_line"
    with pytest.raises(InvoicingError) as full:
        credit_note_issue(invoice_id=invoice.pk, reason="all of it")
    assert full.value.code == "already_credited"
    second = credit_note_issue(invoice_id=invoice.pk, reason="rest of llama",
                               lines=[CreditRequest(llama.pk)], as_of=NOV_20)  # fmt: skip
    assert (second.number, second.subtotal) == ("TFR-CN-2026-000002", Decimal("810.00"))


def test_a_draft_cannot_be_credited(world):
    rated_period(world, charges=worked_charges(world))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]

    with pytest.raises(InvoicingError) as refused:
        credit_note_issue(invoice_id=draft.pk, reason="x")
    assert refused.value.code == "invoice_status"


def test_credit_notes_are_exported_like_invoices(invoice):
    burst = _line(invoice, "burst", "29.40")
    credit_note_issue(invoice_id=invoice.pk, reason="Outage", lines=[CreditRequest(burst.pk)],
                      as_of=NOV_20)  # fmt: skip
    out = io.StringIO()

    call_command("export_invoices", "--period", "2026-11", "--credit-notes", stdout=out)

    [note] = json.loads(out.getvalue())
    assert {k: note[k] for k in ("number", "invoice", "subtotal", "tax_total", "total")} == {
        "number": "TFR-CN-2026-000001", "invoice": "TFR-2026-000001",
        "subtotal": "29.40", "tax_total": "5.88", "total": "35.28",
    }  # fmt: skip
    assert note["lines"][0]["kind"] == "burst"
