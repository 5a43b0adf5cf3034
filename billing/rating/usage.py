"""SPEC §6 step 1: usage per product and hour, set-based over the hourly rollups.

``U(h)`` = the meter's aggregation over the hour's events whose dimensions match the
product's filter, ÷ the product's unit size. A rollup is exact per (hour, dimension values),
so the groups the filter keeps combine the meter's way: sums and counts add, max takes the
max, latest takes the latest event's value, unique count counts distinct values again (from
``HourlyDistinctValue``). One query per product and period; no event is read.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, QuerySet, Sum

from metering.models import HourlyDistinctValue, HourlyRollup, Meter

from ..models import Product

Agg = Meter.Aggregation


def _filtered(queryset: QuerySet[Any], filters: dict[str, str]) -> QuerySet[Any]:
    # A JSON key lookup (compares JSON values), not KT(): on SQLite, Django compiles
    # ``KT(...) == "H100"`` to JSON_EXTRACT('H100', '$'), which fails as malformed JSON.
    return queryset.filter(**{f"dimensions__{name}": value for name, value in filters.items()})


def hourly_usage(
    *, org_id: int, product: Product, start: datetime, end: datetime
) -> dict[datetime, Decimal]:
    """``{hour: U(h)}`` in billing units for the hours of ``[start, end)`` that have usage."""
    meter = product.meter
    if meter.aggregation == Agg.UNIQUE_COUNT:
        distinct = HourlyDistinctValue.objects.filter(
            org_id=org_id, meter_id=meter.pk, hour__gte=start, hour__lt=end
        )
        rows = (
            _filtered(distinct, product.filter)
            .values("hour")
            .annotate(v=Count("value", distinct=True))
            .order_by()
        )
        raw = {row["hour"]: Decimal(row["v"]) for row in rows}
    else:
        rollups = _filtered(
            HourlyRollup.objects.filter(
                org_id=org_id, meter_id=meter.pk, hour__gte=start, hour__lt=end
            ),
            product.filter,
        )
        if meter.aggregation == Agg.LATEST:
            raw = _latest(rollups)
        else:
            agg = Max("value") if meter.aggregation == Agg.MAX else Sum("value")
            raw = {
                row["hour"]: row["v"] for row in rollups.values("hour").annotate(v=agg).order_by()
            }
    size = product.unit_size
    return {hour: value / size for hour, value in raw.items() if value}


def _latest(rollups: QuerySet[HourlyRollup]) -> dict[datetime, Decimal]:
    best: dict[datetime, tuple[Any, str, Decimal]] = {}
    for hour, value, moment, tiebreak in rollups.values_list(
        "hour", "value", "latest_time", "latest_tiebreak"
    ):
        if hour not in best or (moment, tiebreak) > best[hour][:2]:
            best[hour] = (moment, tiebreak, value)
    return {hour: entry[2] for hour, entry in best.items()}
