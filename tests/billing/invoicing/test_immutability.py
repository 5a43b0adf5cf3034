"""A finalized invoice cannot be changed: the database refuses it, not only the code."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from billing.invoicing.credit_notes import credit_note_issue
from billing.invoicing.drafting import periods_close
from billing.invoicing.models import Invoice, InvoiceLine, InvoiceTax
from billing.invoicing.status import invoice_status_advance

from ...support.invoicing import finalize
from .conftest import AFTER_GRACE, rated_period, worked_charges

# The latest migration's list of frozen columns (SQLite) must cover every column but the
# status ones; the mutable ones are 0004's.
migration = __import__(
    "billing.migrations.0004_invoice_immutability", fromlist=["INVOICE_FROZEN_COLUMNS"]
)
latest = __import__(
    "billing.migrations.0009_invoice_receivables_void_balance",
    fromlist=["INVOICE_FROZEN_COLUMNS"],
)


@pytest.fixture
def finalized(world):
    rated_period(world, charges=worked_charges(world))
    invoice = periods_close(as_of=AFTER_GRACE).drafted[0]
    return finalize(invoice.pk, as_of=AFTER_GRACE)


def _refused(sql: str, params: list) -> None:
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_an_update_of_a_finalized_line_fails_in_the_database(finalized):
    line = InvoiceLine.objects.filter(invoice=finalized).first()
    assert line is not None

    _refused("UPDATE billing_invoiceline SET amount = %s WHERE id = %s", ["1.00", line.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceLine.objects.filter(pk=line.pk).update(description="edited")

    line.refresh_from_db()
    assert (line.amount, line.description) == (Decimal("12499.20"), line.description)
    assert line.description != "edited"


def test_lines_and_taxes_cannot_be_added_or_deleted(finalized):
    line = InvoiceLine.objects.filter(invoice=finalized).first()
    assert line is not None
    _refused("DELETE FROM billing_invoiceline WHERE id = %s", [line.pk])
    _refused("DELETE FROM billing_invoicetax WHERE invoice_id = %s", [finalized.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceLine.objects.create(
            org=finalized.org, invoice=finalized, position=99, kind="on_demand",
            charge_kind="on_demand", description="sneaked in", quantity=1, unit_price=1, amount=1,
        )  # fmt: skip
    assert InvoiceLine.objects.filter(invoice=finalized).count() == 5
    assert InvoiceTax.objects.filter(invoice=finalized).count() == 1


def test_business_fields_of_a_finalized_invoice_are_frozen(finalized):
    _refused("UPDATE billing_invoice SET total = %s WHERE id = %s", ["0", finalized.pk])
    _refused("UPDATE billing_invoice SET number = %s WHERE id = %s", ["TFR-X", finalized.pk])
    _refused("UPDATE billing_invoice SET customer_vat_id = %s WHERE id = %s", ["", finalized.pk])
    _refused("DELETE FROM billing_invoice WHERE id = %s", [finalized.pk])
    finalized.refresh_from_db()
    assert (finalized.number, finalized.total) == ("TFR-2026-000001", Decimal("16311.30"))


def test_status_moves_forward_only(finalized):
    invoice, changed = invoice_status_advance(
        invoice_id=finalized.pk, status="uncollectible", reason="customer went bust"
    )
    assert (invoice.status, changed) == ("uncollectible", True)
    invoice, changed = invoice_status_advance(invoice_id=finalized.pk, status="paid")
    assert (invoice.status, changed) == ("paid", True)
    invoice, changed = invoice_status_advance(invoice_id=finalized.pk, status="void")
    assert (invoice.status, changed) == ("paid", False)
    # And below the code, the database says the same.
    _refused("UPDATE billing_invoice SET status = 'finalized' WHERE id = %s", [finalized.pk])
    _refused("UPDATE billing_invoice SET status = 'draft' WHERE id = %s", [finalized.pk])
    assert Invoice.objects.get(pk=finalized.pk).status == "paid"


def test_a_draft_can_still_be_edited_and_deleted(world):
    rated_period(world, charges=worked_charges(world))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]

    InvoiceLine.objects.filter(invoice=draft).update(description="reworded")
    draft.delete()

    assert Invoice.objects.count() == 0


def test_credit_notes_never_change(finalized):
    note = credit_note_issue(invoice_id=finalized.pk, reason="goodwill", as_of=AFTER_GRACE)

    _refused("UPDATE billing_creditnote SET total = %s WHERE id = %s", ["1", note.pk])
    _refused("DELETE FROM billing_creditnoteline WHERE credit_note_id = %s", [note.pk])
    note.refresh_from_db()
    assert note.total == finalized.total


def test_the_sqlite_trigger_lists_every_frozen_column():
    columns = {f.column for f in Invoice._meta.concrete_fields}
    assert set(latest.INVOICE_FROZEN_COLUMNS) == columns - set(migration.MUTABLE_COLUMNS)
