from collections.abc import Iterable

import stripe
from celery import Task, shared_task
from django.db import transaction

from metering import metrics

from .client import stripe_enabled
from .services import SyncBusy, invoice_sync, invoices_to_sync


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


@shared_task(name="billing.stripe.sync_pending", acks_late=True)
def sync_pending() -> int:
    """Enqueue a sync for every invoice Stripe does not fully hold (failed, never sent)."""
    ids = invoices_to_sync()
    for invoice_id in ids:
        sync_invoice.delay(invoice_id)
    return len(ids)


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
