from celery import shared_task
from django.utils import timezone

from metering import metrics

from .drafting import periods_close


@shared_task(name="billing.invoicing.close_periods", acks_late=True)
def close_periods() -> int:
    """Draft the invoices of every period whose grace window has ended. Idempotent."""
    try:
        return len(periods_close(as_of=timezone.now()).drafted_ids)
    except Exception:
        metrics.TASK_FAILURES.labels(task="billing.invoicing.close_periods").inc()
        raise
