"""Pushing finalized invoices to Stripe: resumable, never duplicated."""

import pytest
import stripe
from django.core.management import call_command

from billing.invoicing.models import Invoice, StripeInvoiceSync
from billing.invoicing.status import invoice_void
from billing.stripe.services import invoice_sync, invoices_to_sync

from ...support.invoicing import finalize

# (method, path regex) of each step our sync takes, in order.
STEPS = [
    ("customer", r"^/v1/customers$"),
    ("create invoice", r"^/v1/invoices$"),
    ("invoice item", r"^/v1/invoiceitems$"),
    ("finalize", r"/finalize$"),
]
# Lines with an amount (the covered line is 0.00), then credits, then VAT.
EXPECTED_ITEMS = [1249920, 2940, 90000, 16415, -50000, 261855]


def _stripe_invoice(fake):
    [invoice] = fake.invoices.values()
    items = [i["amount"] for i in fake.invoice_items.values() if i["invoice"] == invoice["id"]]
    return invoice, items


def test_sync_creates_customer_items_and_a_finalized_invoice_with_our_number(fake, finalized):
    sync = invoice_sync(invoice_id=finalized.pk, client=fake.client())

    invoice, items = _stripe_invoice(fake)
    assert (invoice["status"], invoice["number"]) == ("open", "TFR-2026-000001")
    assert items == EXPECTED_ITEMS
    assert invoice["total"] == 1571130 == int(finalized.total * 100)
    assert invoice["metadata"]["tessera_invoice_id"] == str(finalized.pk)
    finalized.org.refresh_from_db()
    assert finalized.org.stripe_customer_id == invoice["customer"]
    assert (sync.state, sync.stripe_invoice_id, len(sync.items)) == ("done", invoice["id"], 6)


@pytest.mark.parametrize(("step", "path"), STEPS, ids=[s for s, _ in STEPS])
@pytest.mark.parametrize("fault", ["lost", "500", "409"])
def test_a_fault_at_any_step_then_a_rerun_leaves_exactly_one_invoice(
    fake, finalized, step, path, fault
):
    client = fake.client()
    fake.inject(fault, path=path)

    with pytest.raises(stripe.StripeError):
        invoice_sync(invoice_id=finalized.pk, client=client)
    sync = StripeInvoiceSync.objects.get(invoice=finalized)
    assert (sync.state, sync.attempts) == ("failed", 1)
    invoice_sync(invoice_id=finalized.pk, client=client)

    assert len(fake.customers) == 1
    invoice, items = _stripe_invoice(fake)
    assert items == EXPECTED_ITEMS
    assert (invoice["status"], invoice["total"]) == ("open", 1571130)


def test_a_lost_response_on_every_item_then_reruns(fake, finalized):
    client = fake.client()
    fake.inject("lost", path=r"^/v1/invoiceitems$", times=len(EXPECTED_ITEMS))

    for _ in range(len(EXPECTED_ITEMS)):
        with pytest.raises(stripe.APIConnectionError):
            invoice_sync(invoice_id=finalized.pk, client=client)
    invoice_sync(invoice_id=finalized.pk, client=client)

    assert _stripe_invoice(fake)[1] == EXPECTED_ITEMS


def test_a_second_sync_calls_stripe_for_nothing(fake, finalized):
    client = fake.client()
    invoice_sync(invoice_id=finalized.pk, client=client)
    calls = len(fake.requests)

    invoice_sync(invoice_id=finalized.pk, client=client)

    assert len(fake.requests) == calls
    assert invoices_to_sync() == []


def test_a_local_void_is_pushed_to_stripe(fake, finalized):
    client = fake.client()
    invoice_sync(invoice_id=finalized.pk, client=client)
    invoice_void(invoice_id=finalized.pk, reason="billed the wrong org")
    assert invoices_to_sync() == [finalized.pk]

    invoice_sync(invoice_id=finalized.pk, client=client)

    assert _stripe_invoice(fake)[0]["status"] == "void"
    assert invoices_to_sync() == []


def test_sync_stripe_command_and_drafts_are_not_sent(fake, finalized, settings, monkeypatch):
    from billing.stripe import services

    settings.STRIPE_API_KEY = "sk_test_tessera"
    monkeypatch.setattr(services, "stripe_client", lambda: fake.client())
    Invoice.objects.filter(pk=finalized.pk)  # finalized; a draft would not be listed
    assert invoices_to_sync() == [finalized.pk]

    call_command("sync_stripe")

    assert StripeInvoiceSync.objects.get(invoice=finalized).state == "done"
    assert len(fake.invoices) == 1


def test_finalizing_enqueues_the_sync_when_stripe_is_on(
    fake, world, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from billing.invoicing.drafting import periods_close
    from billing.stripe import services

    from ..invoicing.conftest import AFTER_GRACE, rated_period, worked_charges

    settings.STRIPE_API_KEY = "sk_test_tessera"
    monkeypatch.setattr(services, "stripe_client", lambda: fake.client())
    rated_period(world, charges=worked_charges(world))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]

    with django_capture_on_commit_callbacks(execute=True):
        finalize(draft.pk, as_of=AFTER_GRACE)

    assert [i["number"] for i in fake.invoices.values()] == ["TFR-2026-000001"]
