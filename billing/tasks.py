from celery import shared_task
from django.utils import timezone

from core.timeparse import parse_instant
from metering import metrics

from .rating.due import periods_due
from .services import period_rate, periods_ensure_all


@shared_task(name="billing.rate_period", acks_late=True)
def rate_period(period_id: int, as_of: str | None = None) -> None:
    """Rate one (org, period). Idempotent: a task lost with its worker is simply run again."""
    try:
        period_rate(period_id=period_id, as_of=parse_instant(as_of) if as_of else None)
    except Exception:
        metrics.TASK_FAILURES.labels(task="billing.rate_period").inc()
        raise


@shared_task(name="billing.rate_due", acks_late=True)
def rate_due() -> int:
    """Open the periods that have begun, then enqueue one rating per stale period, so that
    the work shards by (org, period) across workers."""
    now = timezone.now()
    periods_ensure_all(now=now)
    due = periods_due(now=now)
    for period_id in due:
        rate_period.delay(period_id)
    return len(due)
