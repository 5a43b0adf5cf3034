"""SPEC §6 step 1: usage per product and hour, set-based over the hourly rollups.

``U(h)`` = the meter's aggregation over the hour's events whose dimensions match the
product's filter, ÷ the product's unit size. A rollup is exact per (hour, dimension values),
so the groups the filter keeps combine the meter's way: sums and counts add, max takes the
max, latest takes the latest event's value, unique count counts distinct values again (from
``HourlyDistinctValue``). One query per product and period; no event is read.

A period's quantity (SPEC §3 Product quantity) is Σ U(h) for an ``hourly`` product; for a
``period`` product it is the meter's aggregation over the whole range, also from the rollups:
the max of the hourly maxes, the latest hour's latest value (ties broken as the rollup broke
them: by (time, source, id)), and the distinct values of ``HourlyDistinctValue`` counted again.
"""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Q, QuerySet, Sum

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
        if meter.aggregation != Agg.LATEST:
            found = orgs_hourly_usage(org_ids=[org_id], product=product, start=start, end=end)
            assert found is not None  # sum, count and max are grouped
            return found[org_id]
        raw = _latest(rollups)
    size = product.unit_size
    return {hour: value / size for hour, value in raw.items() if value}


def period_usage(*, org_id: int, product: Product, start: datetime, end: datetime) -> Decimal:
    """The product's quantity over ``[start, end)`` in billing units: Σ U(h), one aggregate
    row when the meter's hours simply add (sum, count); for a ``period`` product of a max,
    latest or unique count meter, that aggregation over the whole range; otherwise the sum of
    the hourly values (at most one row per hour)."""
    meter = product.meter
    if product.quantity == Product.Quantity.PERIOD and meter.aggregation not in (
        Agg.SUM,
        Agg.COUNT,
    ):
        return range_aggregate(org_id=org_id, product=product, start=start, end=end)
    if meter.aggregation in (Agg.SUM, Agg.COUNT):
        total = _filtered(
            HourlyRollup.objects.filter(
                org_id=org_id, meter_id=meter.pk, hour__gte=start, hour__lt=end
            ),
            product.filter,
        ).aggregate(v=Sum("value"))["v"]
        return (total or Decimal(0)) / product.unit_size
    hourly = hourly_usage(org_id=org_id, product=product, start=start, end=end)
    return sum(hourly.values(), Decimal(0))


def period_usages(
    *, org_id: int, wanted: Sequence[tuple[Product, datetime, datetime]]
) -> list[Decimal]:
    """``period_usage`` of each ``(product, start, end)``, in order, in billing units. The
    ranges of products whose meter's hours simply add (sum, count) are summed in one query
    (one ``SUM(value) FILTER (WHERE …)`` per range: the same rows, the same exact numeric sum
    as one query each); the others take ``period_usage``'s own queries."""
    results: list[Decimal | None] = [None] * len(wanted)
    indexes = [index for index, (product, _, _) in enumerate(wanted) if additive(product)]
    if indexes:
        sums = orgs_period_usages(org_ids=[org_id], wanted=[wanted[i] for i in indexes])
        for index, value in zip(indexes, sums[org_id], strict=True):
            results[index] = value
    return [
        value if value is not None else period_usage(org_id=org_id, product=p, start=s, end=e)
        for value, (p, s, e) in zip(results, wanted, strict=True)
    ]


def additive(product: Product) -> bool:
    """Whether the product's meter's hours simply add (sum, count)."""
    return product.meter.aggregation in (Agg.SUM, Agg.COUNT)


def orgs_period_usages(
    *, org_ids: Sequence[int], wanted: Sequence[tuple[Product, datetime, datetime]]
) -> dict[int, list[Decimal]]:
    """``period_usages`` of the same ``wanted`` ranges, all of additive products, for each
    of ``org_ids``, in one query grouped by org: the same sums as one query per org. An org
    without rollups in the ranges has zeros."""
    assert all(additive(product) for product, _, _ in wanted)
    if not wanted or not org_ids:
        return {org_id: [Decimal(0)] * len(wanted) for org_id in org_ids}
    sums: dict[str, Sum] = {}
    for index, (product, start, end) in enumerate(wanted):
        dims = {f"dimensions__{name}": value for name, value in product.filter.items()}
        where = Q(meter_id=product.meter_id, hour__gte=start, hour__lt=end, **dims)
        sums[f"u{index}"] = Sum("value", filter=where)
    rows = (
        HourlyRollup.objects.filter(
            org_id__in=list(org_ids),
            meter_id__in={product.meter_id for product, _, _ in wanted},
            hour__gte=min(start for _, start, _ in wanted),
            hour__lt=max(end for _, _, end in wanted),
        )
        .values("org_id")
        .annotate(**sums)
        .order_by()
    )
    found = {
        row["org_id"]: [
            (row[f"u{index}"] or Decimal(0)) / product.unit_size
            for index, (product, _, _) in enumerate(wanted)
        ]
        for row in rows
    }
    return {org_id: found.get(org_id, [Decimal(0)] * len(wanted)) for org_id in org_ids}


def orgs_hourly_usage(
    *, org_ids: Sequence[int], product: Product, start: datetime, end: datetime
) -> dict[int, dict[datetime, Decimal]] | None:
    """``hourly_usage`` of each of ``org_ids`` in one query grouped by (org, hour), for a
    meter whose hours sum, count or max; None for the others (read org by org)."""
    meter = product.meter
    if meter.aggregation not in (Agg.SUM, Agg.COUNT, Agg.MAX):
        return None
    rollups = _filtered(
        HourlyRollup.objects.filter(
            org_id__in=list(org_ids), meter_id=meter.pk, hour__gte=start, hour__lt=end
        ),
        product.filter,
    )
    agg = Max("value") if meter.aggregation == Agg.MAX else Sum("value")
    size = product.unit_size
    found: dict[int, dict[datetime, Decimal]] = {org_id: {} for org_id in org_ids}
    for row in rollups.values("org_id", "hour").annotate(v=agg).order_by():
        if row["v"]:
            found[row["org_id"]][row["hour"]] = row["v"] / size
    return found


def _latest(rollups: QuerySet[HourlyRollup]) -> dict[datetime, Decimal]:
    best: dict[datetime, tuple[Any, str, Decimal]] = {}
    for hour, value, moment, tiebreak in rollups.values_list(
        "hour", "value", "latest_time", "latest_tiebreak"
    ):
        if hour not in best or (moment, tiebreak) > best[hour][:2]:
            best[hour] = (moment, tiebreak, value)
    return {hour: entry[2] for hour, entry in best.items()}


def range_aggregate(*, org_id: int, product: Product, start: datetime, end: datetime) -> Decimal:
    """The meter's aggregation over all of ``[start, end)`` (not per hour), in billing units:
    one or two queries over the rollups whatever the length of the range."""
    meter = product.meter
    if meter.aggregation == Agg.UNIQUE_COUNT:
        distinct = HourlyDistinctValue.objects.filter(
            org_id=org_id, meter_id=meter.pk, hour__gte=start, hour__lt=end
        )
        count = _filtered(distinct, product.filter).aggregate(v=Count("value", distinct=True))
        return Decimal(count["v"] or 0) / product.unit_size
    rollups = _filtered(
        HourlyRollup.objects.filter(
            org_id=org_id, meter_id=meter.pk, hour__gte=start, hour__lt=end
        ),
        product.filter,
    )
    if meter.aggregation == Agg.LATEST:
        last = rollups.aggregate(t=Max("latest_time"))["t"]
        # Several groups may share the latest moment: the tiebreak is compared in Python, as
        # the rollup compared it, whatever the database's collation.
        tied = rollups.filter(latest_time=last).values_list("latest_tiebreak", "value")
        value = max(tied)[1] if last is not None else Decimal(0)
    elif meter.aggregation == Agg.MAX:
        value = rollups.aggregate(v=Max("value"))["v"] or Decimal(0)
    else:
        value = rollups.aggregate(v=Sum("value"))["v"] or Decimal(0)
    return value / product.unit_size
