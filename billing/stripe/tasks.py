from collections.abc import Iterable

import stripe
from celery import Task, shared_task
from django.db import transaction

from metering import metrics

from .client import stripe_enabled
from .services import (
    InvoiceNotInStripe,
    SyncBusy,
    credit_note_sync,
    credit_notes_to_sync,
    invoice_sync,
    invoices_to_sync,
)


@shared_task(
    name="billing.stripe.sync_invoice",
    bind=True,
    acks_late=True,
    max_retries=8,
    retry_backoff=True,
    retry_backoff_max=1800,
)
def sync_invoice(self: Task, invoice_id: int) -> None:
    """Push one finalized invoice to Stripe; retried with backoff. Resumable: a retry skips
    the steps already saved."""
    try:
        invoice_sync(invoice_id=invoice_id)
    except SyncBusy:
        return
    except stripe.StripeError as exc:
        metrics.TASK_FAILURES.labels(task="billing.stripe.sync_invoice").inc()
        raise self.retry(exc=exc) from exc


@shared_task(
    name="billing.stripe.sync_credit_note",
    bind=True,
    acks_late=True,
    max_retries=8,
    retry_backoff=True,
    retry_backoff_max=1800,
)
def sync_credit_note(self: Task, credit_note_id: int) -> None:
    """Push one credit note to Stripe; retried with backoff, also while its invoice has not
    reached Stripe yet."""
    import stripe

    try:
        credit_note_sync(credit_note_id=credit_note_id)
    except SyncBusy:
        return
    except InvoiceNotInStripe as exc:
        raise self.retry(exc=exc, countdown=30) from exc
    except stripe.StripeError as exc:
        metrics.TASK_FAILURES.labels(task="billing.stripe.sync_credit_note").inc()
        raise self.retry(exc=exc) from exc


@shared_task(name="billing.stripe.sync_pending", acks_late=True)
def sync_pending() -> int:
    """Enqueue a sync for every invoice and credit note Stripe does not fully hold (failed,
    never sent)."""
    ids = invoices_to_sync()
    for invoice_id in ids:
        sync_invoice.delay(invoice_id)
    notes = credit_notes_to_sync()
    for note_id in notes:
        sync_credit_note.delay(note_id)
    return len(ids) + len(notes)


def credit_note_sync_on_commit(*, credit_note_id: int) -> None:
    """Once the caller's transaction commits, enqueue ``sync_credit_note`` (if Stripe is
    enabled); a broker failure is logged, never undoes the commit."""
    if not stripe_enabled():
        return

    def enqueue_credit_note_sync() -> None:
        sync_credit_note.delay(credit_note_id)

    transaction.on_commit(enqueue_credit_note_sync, robust=True)


def invoices_sync_on_commit(*, invoice_ids: Iterable[int]) -> None:
    """Once the caller's transaction commits, enqueue ``sync_invoice`` for each invoice (if
    Stripe is enabled). Robust: a broker failure is logged, never undoes the commit."""
    if not stripe_enabled():
        return
    for invoice_id in invoice_ids:
        # A named function: robust on_commit logs a failure by the callback's name.
        def enqueue_sync(pk: int = invoice_id) -> None:
            sync_invoice.delay(pk)

        transaction.on_commit(enqueue_sync, robust=True)
