from celery import shared_task
from django.conf import settings
from django.utils import timezone

from core.timeparse import parse_instant
from metering import metrics
from metering.models import QuarantinedWork
from metering.quarantine import backing_off

from .alerts.services import alerts_evaluate_all
from .rating.due import in_batches, periods_due_by_org
from .services import period_unit, periods_ensure_all, periods_rate

RATING = QuarantinedWork.Kind.RATING

__all__ = ["evaluate_alerts", "period_unit", "rate_due", "rate_period", "rate_periods"]


@shared_task(name="billing.rate_period", acks_late=True)
def rate_period(period_id: int, as_of: str | None = None) -> bool:
    """Rate one (org, period): a batch of one (``periods_rate``). Idempotent: a task lost with
    its worker is simply run again.
    A failure is quarantined (SPEC §8) and reported as ``False``, not raised, so that the
    other periods of a run (in-process, one after another) are rated; ``rate_due`` retries it
    after its backoff."""
    moment = parse_instant(as_of) if as_of else None
    outcomes = periods_rate(period_ids=[period_id], as_of=moment)
    if period_id not in outcomes:  # the period is gone: nothing to rate
        return False
    ok = outcomes[period_id]
    if not ok:
        metrics.TASK_FAILURES.labels(task="billing.rate_period").inc()
    return ok


@shared_task(name="billing.rate_periods", acks_late=True)
def rate_periods(period_ids: list[int], as_of: str | None = None) -> int:
    """Rate a batch of periods, each in its own transaction and isolated (``periods_rate``):
    one failing period is quarantined and the others are rated. Idempotent: a batch lost with
    its worker is simply run again. Returns how many were rated."""
    moment = parse_instant(as_of) if as_of else None
    outcomes = periods_rate(period_ids=period_ids, as_of=moment)
    failed = sum(1 for ok in outcomes.values() if not ok)
    if failed:
        metrics.TASK_FAILURES.labels(task="billing.rate_periods").inc(failed)
    return len(outcomes) - failed


@shared_task(name="billing.rate_due", acks_late=True)
def rate_due() -> int:
    """Open the periods that have begun, then enqueue the stale ones in batches of
    ``TESSERA_RATING_BATCH`` periods (``billing.rate_periods``), in org order with each org's
    periods together, so that the work shards by org across workers and what a batch's
    periods share is read once. A quarantined period waits out its backoff. Returns how many
    periods were enqueued."""
    now = timezone.now()
    periods_ensure_all(now=now)
    held = set(backing_off(kind=RATING, now=now).values_list("unit", flat=True))
    due = [(pk, org) for pk, org in periods_due_by_org(now=now) if period_unit(pk) not in held]
    for batch in in_batches(due, settings.TESSERA_RATING_BATCH):
        rate_periods.delay(batch)
    return len(due)


@shared_task(name="billing.alerts.evaluate_all", acks_late=True)
def evaluate_alerts() -> int:
    """Beat's backstop to the evaluation after each rating: every org's alerts against its
    current period. Returns the new firings."""
    fired, _ = alerts_evaluate_all()
    return fired
