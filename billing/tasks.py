from functools import partial

from celery import shared_task
from django.utils import timezone

from core.timeparse import parse_instant
from metering import metrics
from metering.models import QuarantinedWork
from metering.quarantine import attempt, backing_off

from .alerts.services import alerts_evaluate_all
from .models import BillingPeriod
from .rating.due import periods_due
from .services import period_rate, periods_ensure_all

RATING = QuarantinedWork.Kind.RATING


def period_unit(period_id: int) -> str:
    """The quarantine unit of one period's rating."""
    return f"period:{period_id}"


@shared_task(name="billing.rate_period", acks_late=True)
def rate_period(period_id: int, as_of: str | None = None) -> bool:
    """Rate one (org, period). Idempotent: a task lost with its worker is simply run again.
    A failure is quarantined (SPEC §8) and reported as ``False``, not raised, so that the
    other periods of a run (in-process, one after another) are rated; ``rate_due`` retries it
    after its backoff."""
    period = BillingPeriod.objects.select_related("org").filter(pk=period_id).first()
    if period is None:
        return False
    moment = parse_instant(as_of) if as_of else None
    outcome = attempt(
        partial(period_rate, period_id=period_id, as_of=moment),
        kind=RATING,
        org=period.org,
        unit=period_unit(period_id),
        hour=period.start,
    )
    if not outcome.ok:
        metrics.TASK_FAILURES.labels(task="billing.rate_period").inc()
    return outcome.ok


@shared_task(name="billing.rate_due", acks_late=True)
def rate_due() -> int:
    """Open the periods that have begun, then enqueue one rating per stale period, so that
    the work shards by (org, period) across workers. A quarantined period waits out its
    backoff."""
    now = timezone.now()
    periods_ensure_all(now=now)
    held = set(backing_off(kind=RATING, now=now).values_list("unit", flat=True))
    due = [pk for pk in periods_due(now=now) if period_unit(pk) not in held]
    for period_id in due:
        rate_period.delay(period_id)
    return len(due)


@shared_task(name="billing.alerts.evaluate_all", acks_late=True)
def evaluate_alerts() -> int:
    """Beat's backstop to the evaluation after each rating: every org's alerts against its
    current period. Returns the new firings."""
    fired, _ = alerts_evaluate_all()
    return fired
