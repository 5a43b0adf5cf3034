"""Credit notes pushed to Stripe: a Stripe credit note for exactly the note's total on the
invoice's Stripe invoice, idempotent like invoices, waiting for the invoice when it is not
there yet."""

import io
from datetime import UTC, datetime

import pytest
import stripe
from django.core.management import call_command

from billing.invoicing.credit_notes import credit_note_issue
from billing.invoicing.models import StripeCreditNoteSync, StripeInvoiceSync
from billing.stripe.services import (
    InvoiceNotInStripe,
    credit_note_sync,
    credit_notes_to_sync,
    invoice_sync,
)

ISSUED = datetime(2026, 11, 5, tzinfo=UTC)


@pytest.fixture
def note(finalized):
    return credit_note_issue(invoice_id=finalized.pk, reason="goodwill", as_of=ISSUED)


def test_a_credit_note_becomes_one_stripe_credit_note_of_its_total(fake, finalized, note):
    client = fake.client()
    invoice_sync(invoice_id=finalized.pk, client=client)

    sync = credit_note_sync(credit_note_id=note.pk, client=client)

    [stripe_note] = fake.credit_notes.values()
    stripe_invoice = fake.invoices[
        StripeInvoiceSync.objects.get(invoice=finalized).stripe_invoice_id
    ]
    assert stripe_note["invoice"] == stripe_invoice["id"]
    assert stripe_note["amount"] == int(note.total * 100) == stripe_invoice["total"]
    assert stripe_note["metadata"]["tessera_number"] == note.number
    assert (sync.state, sync.stripe_credit_note_id) == ("done", stripe_note["id"])
    assert credit_notes_to_sync() == []


def test_the_invoice_pdf_prints_stripes_payment_link(fake, finalized):
    from billing.invoicing.pdf import invoice_sheet

    invoice_sync(invoice_id=finalized.pk, client=fake.client())
    finalized.refresh_from_db()

    assert any("Pay online: https://invoice.stripe.com/i/fake/" in line
               for line in invoice_sheet(finalized).payment)  # fmt: skip


def test_it_waits_for_its_invoice_and_sends_nothing_before(fake, note):
    with pytest.raises(InvoiceNotInStripe):
        credit_note_sync(credit_note_id=note.pk, client=fake.client())

    assert fake.credit_notes == {}
    assert StripeCreditNoteSync.objects.get(credit_note=note).state == "pending"
    assert credit_notes_to_sync() == [note.pk]


@pytest.mark.parametrize("fault", ["lost", "500", "409"])
def test_a_fault_then_a_rerun_leaves_exactly_one_stripe_credit_note(fake, finalized, note, fault):
    client = fake.client()
    invoice_sync(invoice_id=finalized.pk, client=client)
    fake.inject(fault, path=r"^/v1/credit_notes$")

    with pytest.raises(stripe.StripeError):
        credit_note_sync(credit_note_id=note.pk, client=client)
    assert StripeCreditNoteSync.objects.get(credit_note=note).state == "failed"
    credit_note_sync(credit_note_id=note.pk, client=client)

    assert len(fake.credit_notes) == 1
    assert StripeCreditNoteSync.objects.get(credit_note=note).state == "done"


def test_sync_stripe_pushes_invoices_then_credit_notes(fake, finalized, note, settings,
                                                      monkeypatch):  # fmt: skip
    settings.STRIPE_API_KEY = "sk_test_tessera"
    monkeypatch.setattr("billing.stripe.services.stripe_client", fake.client)

    call_command("sync_stripe", stdout=io.StringIO())

    [stripe_note] = fake.credit_notes.values()
    assert stripe_note["metadata"]["tessera_credit_note_id"] == str(note.pk)
    assert StripeCreditNoteSync.objects.get(credit_note=note).state == "done"
