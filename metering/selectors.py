"""Reads over usage. Every selector over tenant data takes ``org`` as a required keyword."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDay, TruncHour, TruncMonth

from tenancy.models import Org

from .models import Allocation, HourlyDistinctValue, HourlyRollup, Meter

Window = Literal["hour", "day", "month"]
_TRUNC = {"hour": TruncHour, "day": TruncDay, "month": TruncMonth}
Agg = Meter.Aggregation


@dataclass(frozen=True)
class UsagePoint:
    start: datetime
    end: datetime
    dimensions: dict[str, Any]
    value: Decimal
    event_count: int


def window_end(start: datetime, window: Window) -> datetime:
    if window == "hour":
        return start + timedelta(hours=1)
    if window == "day":
        return start + timedelta(days=1)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def usage_series(
    *,
    org: Org,
    meter: Meter,
    start: datetime,
    end: datetime,
    window: Window = "day",
    group_by: list[str] | tuple[str, ...] = (),
    filters: dict[str, str] | None = None,
) -> list[UsagePoint]:
    """The meter's aggregate per window over [start, end), grouped by dimensions.

    Windows combine hourly rollups the way the aggregation demands: sums and counts add,
    max takes the max, latest takes the latest event's value, and unique count counts the
    distinct values over the whole window (not the sum of hourly counts).
    """
    unknown = [d for d in (*group_by, *(filters or {})) if d not in meter.group_by]
    if unknown:
        raise ValueError(f"unknown dimension(s) for meter {meter.key!r}: {', '.join(unknown)}")
    aliases = {name: f"g_{i}" for i, name in enumerate(group_by)}
    base: QuerySet[Any] = HourlyRollup.objects.filter(
        org=org, meter=meter, hour__gte=start, hour__lt=end
    )
    if meter.aggregation == Agg.UNIQUE_COUNT:
        base = HourlyDistinctValue.objects.filter(
            org=org, meter=meter, hour__gte=start, hour__lt=end
        )
    base = base.filter(**{f"dimensions__{name}": value for name, value in (filters or {}).items()})
    rows = base.annotate(
        w=_TRUNC[window]("hour", tzinfo=UTC),
        **{alias: KT(f"dimensions__{name}") for name, alias in aliases.items()},
    )

    def dims(row: dict[str, Any]) -> dict[str, Any]:
        return {name: row[alias] for name, alias in aliases.items()}

    keys = ["w", *aliases.values()]
    if meter.aggregation == Agg.LATEST:
        return _latest(rows, keys, dims, window)
    if meter.aggregation == Agg.UNIQUE_COUNT:
        counts = {
            _group(row, keys): row
            for row in rows.values(*keys).annotate(n=Count("value", distinct=True)).order_by()
        }
        events = _event_counts(org, meter, start, end, window, aliases, filters)
        return _points(
            ((row, Decimal(row["n"]), events.get(key, 0)) for key, row in counts.items()),
            dims,
            window,
        )
    agg = Max("value") if meter.aggregation == Agg.MAX else Sum("value")
    grouped = rows.values(*keys).annotate(v=agg, n=Sum("event_count")).order_by()
    return _points(((row, row["v"], row["n"]) for row in grouped), dims, window)


def _group(row: dict[str, Any], keys: list[str]) -> tuple[Any, ...]:
    return tuple(row[k] for k in keys)


def _points(rows: Any, dims: Any, window: Window) -> list[UsagePoint]:
    points = [
        UsagePoint(
            start=row["w"],
            end=window_end(row["w"], window),
            dimensions=dims(row),
            value=value,
            event_count=int(count or 0),
        )
        for row, value, count in rows
    ]
    return sorted(
        points, key=lambda p: (p.start, sorted((k, str(v)) for k, v in p.dimensions.items()))
    )


def _event_counts(
    org: Org,
    meter: Meter,
    start: datetime,
    end: datetime,
    window: Window,
    aliases: dict[str, str],
    filters: dict[str, str] | None,
) -> dict[tuple[Any, ...], int]:
    base = HourlyRollup.objects.filter(org=org, meter=meter, hour__gte=start, hour__lt=end)
    base = base.filter(**{f"dimensions__{name}": value for name, value in (filters or {}).items()})
    keys = ["w", *aliases.values()]
    rows = (
        base.annotate(
            w=_TRUNC[window]("hour", tzinfo=UTC),
            **{alias: KT(f"dimensions__{name}") for name, alias in aliases.items()},
        )
        .values(*keys)
        .annotate(n=Sum("event_count"))
        .order_by()
    )
    return {_group(row, keys): row["n"] for row in rows}


def _latest(rows: QuerySet[Any], keys: list[str], dims: Any, window: Window) -> list[UsagePoint]:
    best: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for row in rows.values(*keys, "value", "latest_time", "latest_tiebreak", "event_count"):
        key = _group(row, keys)
        counts[key] += row["event_count"]
        rank = (row["latest_time"], row["latest_tiebreak"])
        if key not in best or rank > best[key][0]:
            best[key] = (rank, row)
    return _points(
        ((row, row["value"], counts[key]) for key, (_, row) in best.items()), dims, window
    )


def meters_list() -> QuerySet[Meter]:
    """Meters are platform configuration, the same for every org."""
    return Meter.objects.all()


def allocations_for_node(*, node: str, start: datetime, end: datetime) -> QuerySet[Any]:
    """Allocations of a node's devices that overlap [start, end).

    Platform data, not one tenant's: only collectors and operators may call this.
    """
    return (
        Allocation.objects.filter(device__node=node, start__lt=end)
        .filter(Q(end__isnull=True) | Q(end__gt=start))
        .select_related("device", "org")
        .order_by("device__uuid", "start")
    )
