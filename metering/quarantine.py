"""Quarantine of failed batch work (SPEC §8 "Batch work isolates faults", STYLE "Isolate faults").

A batch loop over orgs or hours runs each unit through ``attempt``: the unit runs in its own
transaction (a savepoint inside an outer one), so its failure rolls back only its own writes;
the failure is recorded as a ``QuarantinedWork`` row (error, attempts, next retry with
exponential backoff) and logged, and the loop goes on with the next unit. A unit that succeeds
resolves its open row. Rollups retry due hours by themselves (``metering.rollups``); billing
runs retry at their next scheduled run, skipping units whose backoff has not expired.
"""

import logging
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from tenancy.models import Org

from .lock_objects import lock_open_work
from .models import QuarantinedWork

logger = logging.getLogger("tessera.quarantine")
Kind = QuarantinedWork.Kind
T = TypeVar("T")


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failures: base × 2^(attempts − 1), capped
    (``TESSERA_QUARANTINE_RETRY_SECONDS``, ``TESSERA_QUARANTINE_RETRY_MAX_SECONDS``)."""
    base = settings.TESSERA_QUARANTINE_RETRY_SECONDS
    cap = settings.TESSERA_QUARANTINE_RETRY_MAX_SECONDS
    return timedelta(seconds=min(cap, base * 2 ** min(max(attempts - 1, 0), 32)))


def describe(exc: BaseException) -> str:
    """``ExceptionType: message``, first line of the message, at most 1,000 characters."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}"[:1000]


def work_quarantine(
    *,
    kind: str,
    org_id: int,
    unit: str = "",
    error: str,
    event_type: str = "",
    hour: datetime | None = None,
    now: datetime | None = None,
) -> QuarantinedWork:
    """Record one more failure of a unit: a new open row, or the open row with ``attempts``
    + 1, the new error and the next retry pushed back (``backoff``)."""
    now = now or timezone.now()
    with transaction.atomic():
        entry = lock_open_work(kind=kind, org_id=org_id, unit=unit)
        if entry is None:
            try:
                with transaction.atomic():
                    return QuarantinedWork.objects.create(
                        kind=kind,
                        org_id=org_id,
                        unit=unit,
                        event_type=event_type,
                        hour=hour,
                        error=error,
                        attempts=1,
                        first_failed_at=now,
                        last_failed_at=now,
                        next_attempt_at=now + backoff(1),
                    )
            except IntegrityError:  # another worker recorded it first: count ours on top
                entry = lock_open_work(kind=kind, org_id=org_id, unit=unit)
                assert entry is not None
        entry.attempts = F("attempts") + 1
        entry.error = error
        entry.last_failed_at = now
        entry.save(update_fields=["attempts", "error", "last_failed_at"])
        entry.refresh_from_db(fields=["attempts"])
        entry.next_attempt_at = now + backoff(entry.attempts)
        entry.save(update_fields=["next_attempt_at"])
        return entry


def work_resolve(
    *, kind: str, org_id: int, units: Iterable[str] | None = None, now: datetime | None = None
) -> int:
    """Resolve the open rows of these units, which just succeeded (``None``: every open unit
    of ``kind`` for the org, after a run over the whole org); returns how many."""
    query = QuarantinedWork.objects.filter(kind=kind, org_id=org_id, resolved_at__isnull=True)
    if units is not None:
        query = query.filter(unit__in=list(units))
    return query.update(resolved_at=now or timezone.now())


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """The result of one unit: ``ok`` with its ``value``, or the ``error`` it was set aside
    with."""

    ok: bool
    value: T | None = None
    error: str = ""


def attempt(
    work: Callable[[], T],
    *,
    kind: str,
    org: Org,
    unit: str = "",
    hour: datetime | None = None,
    savepoint: bool = True,
) -> Outcome[T]:
    """Run ``work`` as one isolated unit of a batch run (see the module docstring). Never
    raises for the unit's failure: it is quarantined, logged, and returned as not ``ok``.
    ``unit=""`` is the org's whole run: its success resolves every open unit of ``kind`` for
    the org (e.g. a rating of all its periods resolves each period's failed task).
    ``savepoint=False`` for work made of its own transactions (rating period by period), so
    that what it completed before the failure is kept."""
    try:
        with transaction.atomic() if savepoint else nullcontext():
            value = work()
    except Exception as exc:
        error = describe(exc)
        logger.exception("%s of org %s%s quarantined: %s", kind, org.slug,
                         f" ({unit})" if unit else "", error)  # fmt: skip
        work_quarantine(kind=kind, org_id=org.pk, unit=unit, error=error, hour=hour)
        return Outcome(ok=False, error=error)
    work_resolve(kind=kind, org_id=org.pk, units=[unit] if unit else None)
    return Outcome(ok=True, value=value)


def backing_off(*, kind: str, now: datetime | None = None) -> QuerySet[QuarantinedWork]:
    """Open units of ``kind`` whose next retry is still in the future."""
    return QuarantinedWork.objects.filter(
        kind=kind, resolved_at__isnull=True, next_attempt_at__gt=now or timezone.now()
    )


def quarantined_open(*, orgs: QuerySet[Org]) -> QuerySet[QuarantinedWork]:
    """The open (unresolved) quarantined units of ``orgs``, newest failure first."""
    return QuarantinedWork.objects.filter(org__in=orgs, resolved_at__isnull=True).select_related(
        "org"
    )


def quarantined_counts() -> dict[str, int]:
    """Open quarantined units per kind, every kind present (zero when none): the gauge."""
    counts = dict.fromkeys(Kind.values, 0)
    rows = (
        QuarantinedWork.objects.filter(Q(resolved_at__isnull=True))
        .values("kind")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["kind"]] = row["n"]
    return counts
