from celery import shared_task
from django.utils import timezone

from metering import metrics

from .drafting import periods_close


@shared_task(name="billing.invoicing.close_periods", acks_late=True)
def close_periods() -> int:
    """Draft the invoices of every period whose grace window has ended. Idempotent. An org
    whose close fails is quarantined and counted as a task failure; the others are closed."""
    try:
        report = periods_close(as_of=timezone.now())
        if report.failed:
            metrics.TASK_FAILURES.labels(task="billing.invoicing.close_periods").inc()
        return len(report.drafted_ids)
    except Exception:
        metrics.TASK_FAILURES.labels(task="billing.invoicing.close_periods").inc()
        raise


@shared_task(name="billing.invoicing.mark_overdue", acks_late=True)
def mark_overdue() -> int:
    """Move open invoices past their due date to overdue (``invoices_mark_overdue``)."""
    from .receivables import invoices_mark_overdue

    try:
        return len(invoices_mark_overdue(as_of=timezone.now()))
    except Exception:
        metrics.TASK_FAILURES.labels(task="billing.invoicing.mark_overdue").inc()
        raise
