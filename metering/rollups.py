"""Hourly rollups: per (org, meter, dimension values, UTC hour) the meter's aggregate.

Incremental: only hours marked by ingestion (``RollupMark``) are recomputed, each from all of
its events, so a late event simply marks its old hour again. The arithmetic runs in the
database; only `latest` and `unique_count` stream rows through Python, one batch of hours at a
time, never a whole period.

Faults are isolated per (org, event type, hour) (SPEC §8): each org's hours are recomputed in
a savepoint; when that fails, hour by hour, and an hour that still fails is quarantined
(``metering.quarantine``) with its error while every other hour and org is rolled up. Its old
rollups stay as they were. A quarantined hour is marked again when its backoff expires, so the
rollup retries it by itself; it is resolved when it succeeds.
"""

import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, DecimalField, Max, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, TruncHour
from django.utils import timezone
from django.utils.module_loading import import_string

from . import metrics
from .lock_objects import lock_rollup_marks
from .models import (
    HourlyDistinctValue,
    HourlyRollup,
    Meter,
    QuarantinedWork,
    RollupMark,
    UsageEvent,
)
from .paths import orm_lookup, parse_path
from .quarantine import describe, logger, work_quarantine

HOUR = timedelta(hours=1)
Agg = Meter.Aggregation


def dims_key(dimensions: dict[str, Any]) -> str:
    """sha256 of the dimensions' canonical JSON: 64 characters whatever the values hold (a
    long non-ASCII value once overflowed a key that was the JSON itself)."""
    text = json.dumps(dimensions, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def rollup_pending(*, batch_hours: int | None = None) -> int:
    """Roll up every marked hour, in batches; returns the number of marks consumed. Hours
    that fail are quarantined (see the module docstring), never retried in the same call."""
    limit = batch_hours or settings.TESSERA_ROLLUP_BATCH_HOURS
    requeue_quarantined()
    total = 0
    while True:
        done = _rollup_batch(limit)
        total += done
        if done < limit:
            return total


def rollup_unit(event_type: str, hour: datetime) -> str:
    """The quarantine unit name of one (event type, hour) of an org."""
    return f"{event_type}@{hour.astimezone(UTC).isoformat()}"


def requeue_quarantined(*, now: datetime | None = None) -> int:
    """Mark again the quarantined hours whose backoff has expired; returns how many."""
    now = now or timezone.now()
    due = QuarantinedWork.objects.filter(
        kind=QuarantinedWork.Kind.ROLLUP,
        resolved_at__isnull=True,
        next_attempt_at__lte=now,
        hour__isnull=False,
    ).values_list("org_id", "event_type", "hour")
    marks = [
        RollupMark(org_id=org_id, event_type=event_type, hour=hour, marked_at=now)
        for org_id, event_type, hour in due
        if hour is not None
    ]
    RollupMark.objects.bulk_create(marks, ignore_conflicts=True)
    return len(marks)


@transaction.atomic
def _rollup_batch(limit: int) -> int:
    marks = lock_rollup_marks(limit=limit)
    if not marks:
        return 0
    RollupMark.objects.filter(pk__in=[m[0] for m in marks]).delete()
    hours_by: dict[tuple[str, int], set[datetime]] = defaultdict(set)
    for _, org_id, event_type, hour in marks:
        hours_by[(event_type, org_id)].add(hour)
    meters: dict[str, list[Meter]] = defaultdict(list)
    for meter in Meter.objects.filter(event_type__in={t for t, _ in hours_by}):
        meters[meter.event_type].append(meter)
    held = set(
        QuarantinedWork.objects.filter(
            kind=QuarantinedWork.Kind.ROLLUP,
            resolved_at__isnull=True,
            org_id__in={org_id for _, org_id in hours_by},
        ).values_list("org_id", "unit")
    )
    changed: set[tuple[int, datetime]] = set()
    for (event_type, org_id), hours in sorted(hours_by.items()):
        done = _recompute_isolated(meters.get(event_type, []), org_id, event_type, sorted(hours))
        changed.update((org_id, hour) for hour in done)
        units = {rollup_unit(event_type, hour) for hour in done}
        resolved = [unit for unit in units if (org_id, unit) in held]
        if resolved:
            QuarantinedWork.objects.filter(
                kind=QuarantinedWork.Kind.ROLLUP,
                org_id=org_id,
                unit__in=resolved,
                resolved_at__isnull=True,
            ).update(resolved_at=timezone.now())
    for hook in getattr(settings, "TESSERA_ROLLUP_HOOKS", []):
        import_string(hook)(sorted(changed))
    metrics.ROLLUP_HOURS.inc(len(marks))
    return len(marks)


def _recompute_isolated(
    meters: list[Meter], org_id: int, event_type: str, hours: list[datetime]
) -> list[datetime]:
    """Recompute ``hours`` of one org and event type; returns the hours that succeeded.

    All hours in one savepoint first (the normal case: one pass); if that fails, each hour in
    its own, so that only the hours that fail alone are quarantined."""

    def recompute(some: list[datetime]) -> None:
        with transaction.atomic():
            for meter in meters:
                recompute_hours(meter=meter, org_id=org_id, hours=some)

    try:
        recompute(hours)
        return hours
    except Exception as exc:
        if len(hours) == 1:
            _quarantine_hour(org_id, event_type, hours[0], exc)
            return []
    done = []
    for hour in hours:
        try:
            recompute([hour])
            done.append(hour)
        except Exception as exc:
            _quarantine_hour(org_id, event_type, hour, exc)
    return done


def _quarantine_hour(org_id: int, event_type: str, hour: datetime, exc: Exception) -> None:
    error = describe(exc)
    logger.warning("rollup of org %s, %s, hour %s quarantined: %s", org_id, event_type, hour, error)
    work_quarantine(
        kind=QuarantinedWork.Kind.ROLLUP,
        org_id=org_id,
        unit=rollup_unit(event_type, hour),
        error=error,
        event_type=event_type,
        hour=hour,
    )


def recompute_hours(*, meter: Meter, org_id: int, hours: list[datetime]) -> None:
    """Replace the rollups of ``meter`` for ``org_id`` in ``hours`` with fresh aggregates."""
    HourlyRollup.objects.filter(org_id=org_id, meter=meter, hour__in=hours).delete()
    if meter.aggregation == Agg.UNIQUE_COUNT:
        HourlyDistinctValue.objects.filter(org_id=org_id, meter=meter, hour__in=hours).delete()
    names = sorted(meter.group_by)
    aliases = [f"d_{i}" for i in range(len(names))]
    events = (
        UsageEvent.objects.filter(
            org_id=org_id,
            type=meter.event_type,
            time__gte=hours[0],
            time__lt=hours[-1] + HOUR,
        )
        .annotate(hour=TruncHour("time", tzinfo=UTC))
        .filter(hour__in=hours)
        .annotate(
            **{
                alias: KT(orm_lookup("data", parse_path(meter.group_by[name])))
                for alias, name in zip(aliases, names, strict=True)
            }
        )
    )

    if meter.value_path:
        events = events.annotate(v=KT(orm_lookup("data", parse_path(meter.value_path))))

    def dimensions(row: dict[str, Any]) -> dict[str, Any]:
        return {name: row[alias] for alias, name in zip(aliases, names, strict=True)}

    aggregates: dict[str, Any] = {"n": Count("id")}
    if meter.aggregation in (Agg.SUM, Agg.MAX):
        value = Cast("v", DecimalField(max_digits=38, decimal_places=12))
        aggregates["value"] = Sum(value) if meter.aggregation == Agg.SUM else Max(value)
    groups = events.values("hour", *aliases).annotate(**aggregates).order_by()
    rollups: dict[tuple[datetime, str], HourlyRollup] = {}
    for row in groups:
        dims = dimensions(row)
        total = Decimal(row["n"]) if meter.aggregation == Agg.COUNT else row.get("value")
        rollups[(row["hour"], dims_key(dims))] = HourlyRollup(
            org_id=org_id,
            meter=meter,
            hour=row["hour"],
            dimensions=dims,
            dims_key=dims_key(dims),
            value=total if total is not None else Decimal(0),
            event_count=row["n"],
        )
    if meter.aggregation == Agg.LATEST:
        _fill_latest(events, aliases, dimensions, rollups)
    elif meter.aggregation == Agg.UNIQUE_COUNT:
        _fill_unique(meter, org_id, events, aliases, dimensions, rollups)
    HourlyRollup.objects.bulk_create(rollups.values(), batch_size=1000)


def _fill_latest(
    events: QuerySet[UsageEvent],
    aliases: list[str],
    dimensions: Any,
    rollups: dict[tuple[datetime, str], HourlyRollup],
) -> None:
    """Latest = the value of the event with the greatest (time, source, id) in the group."""
    rows = events.values("hour", *aliases, "v", "time", "source", "event_id").order_by(
        "hour", *aliases
    )
    best: dict[tuple[datetime, str], tuple[datetime, str, str, str]] = {}
    for row in rows.iterator(chunk_size=2000):
        key = (row["hour"], dims_key(dimensions(row)))
        candidate = (row["time"], row["source"], row["event_id"], row["v"])
        if key not in best or candidate[:3] > best[key][:3]:
            best[key] = candidate
    for key, (time, source, event_id, value) in best.items():
        rollup = rollups[key]
        rollup.value = Decimal(value)
        rollup.latest_time = time
        rollup.latest_tiebreak = f"{source}\x1f{event_id}"


def _fill_unique(
    meter: Meter,
    org_id: int,
    events: QuerySet[UsageEvent],
    aliases: list[str],
    dimensions: Any,
    rollups: dict[tuple[datetime, str], HourlyRollup],
) -> None:
    rows = events.values("hour", *aliases, "v").distinct().order_by()
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    batch: list[HourlyDistinctValue] = []
    for row in rows.iterator(chunk_size=2000):
        dims = dimensions(row)
        key = (row["hour"], dims_key(dims))
        counts[key] += 1
        batch.append(
            HourlyDistinctValue(
                org_id=org_id,
                meter=meter,
                hour=row["hour"],
                dimensions=dims,
                dims_key=key[1],
                value=str(row["v"]),
            )
        )
        if len(batch) >= 2000:
            HourlyDistinctValue.objects.bulk_create(batch)
            batch = []
    HourlyDistinctValue.objects.bulk_create(batch)
    for key, count in counts.items():
        rollups[key].value = Decimal(count)
