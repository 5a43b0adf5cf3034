"""Usage reads per product, in billing units and with cost (SPEC §5 read APIs, §3 Product
quantity). Reads rollups and rated results only, never events.

Quantity of a window: for an ``hourly`` product Σ U(h) over the window's hours, as rating
bills it; for a ``period`` product the meter's aggregation over the window (the window's peak,
last value or distinct count) — so a window that is a billing period reads what is billed.

Cost of a window: the rated amounts of the org's billing periods (in one currency) spread
over the hours that caused them, then summed per window — every hour of a reservation by its
reserved quantity R(h) (take-or-pay accrues whether used or not), burst by max(0, U(h) − R(h)),
on-demand by U(h) (so tiers and discounts spread at the line's average price). The minimum
spend true-up belongs to no product and is not spread. Each line is spread in the currency's
minor units by largest remainder, so the windows of a period add up to its lines exactly.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

from metering.models import Meter
from metering.selectors import usage_series, window_end
from tenancy.models import Org

from .models import BillingPeriod, Product, RatedCharge, ReservationUsage
from .money import minor_units
from .rating.usage import hourly_usage

Window = Literal["hour", "day", "month"]
HOUR = timedelta(hours=1)
ZERO = Decimal(0)
Kind = RatedCharge.Kind
ADDITIVE = (Meter.Aggregation.SUM, Meter.Aggregation.COUNT)


@dataclass(frozen=True)
class ProductWindow:
    start: datetime
    end: datetime  # exclusive
    product: Product
    quantity: Decimal  # billing units
    amount: Decimal  # rated cost spread onto the window, in `currency`, minor units
    currency: str


def _hour_ceil(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + HOUR


def window_start(moment: datetime, window: Window) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if window == "hour":
        return moment
    if window == "day":
        return moment.replace(hour=0)
    return moment.replace(day=1, hour=0)


def products_matching(filters: dict[str, str] | None = None) -> list[Product]:
    """The catalog's products whose own filter agrees with each dimension value given: a
    dimension filter picks products by how they are defined (gpu_model, region, model)."""
    products = Product.objects.select_related("meter").order_by("key")
    wanted = filters or {}
    return [p for p in products if all(p.filter.get(k) == v for k, v in wanted.items())]


def is_period_quantity(product: Product) -> bool:
    return product.quantity == Product.Quantity.PERIOD and product.meter.aggregation not in ADDITIVE


def _quantities(
    *, org: Org, product: Product, start: datetime, end: datetime, window: Window
) -> dict[datetime, Decimal]:
    if is_period_quantity(product):
        points = usage_series(
            org=org, meter=product.meter, start=start, end=end, window=window,
            filters=product.filter,
        )  # fmt: skip
        return {p.start: p.value / product.unit_size for p in points if p.value}
    windows: dict[datetime, Decimal] = defaultdict(Decimal)
    for hour, value in hourly_usage(org_id=org.pk, product=product, start=start, end=end).items():
        windows[window_start(hour, window)] += value
    return dict(windows)


def product_usage(
    *,
    org: Org,
    start: datetime,
    end: datetime,
    window: Window,
    products: Iterable[Product],
    currency: str,
) -> list[ProductWindow]:
    """Per window of ``[start, end)`` and product: quantity (billing units) and cost (the
    rated amounts of the org's periods in ``currency``), sorted by window then product key.
    Windows are clamped to ``[start, end)``; a window with neither usage nor cost is left out.
    """
    products = list(products)
    costs = hourly_costs(org=org, start=start, end=end, currency=currency, products=products)
    rows = []
    for product in products:
        quantities = _quantities(org=org, product=product, start=start, end=end, window=window)
        amounts: dict[datetime, Decimal] = defaultdict(Decimal)
        for hour, amount in costs.get(product.pk, {}).items():
            amounts[window_start(hour, window)] += amount
        for w in sorted(set(quantities) | set(amounts)):
            rows.append(
                ProductWindow(
                    start=max(w, start),
                    end=min(window_end(w, window), end),
                    product=product,
                    quantity=quantities.get(w, ZERO),
                    amount=amounts.get(w, ZERO),
                    currency=currency,
                )
            )
    rows.sort(key=lambda r: (r.start, r.product.key))
    return rows


def spread(
    amount: Decimal, weights: dict[datetime, Decimal], currency: str
) -> dict[datetime, Decimal]:
    """``amount`` split over the hours in proportion to ``weights``, in the currency's minor
    units by largest remainder (ties: earlier hour first): the parts add up to ``amount``."""
    total = sum(weights.values(), ZERO)
    if not total:
        return {}
    unit = Decimal(1).scaleb(-minor_units(currency))
    units = amount / unit
    shares = {hour: units * w / total for hour, w in weights.items()}
    floors = {hour: s.to_integral_value(rounding=ROUND_FLOOR) for hour, s in shares.items()}
    left = int(units.to_integral_value() - sum(floors.values(), ZERO))
    for hour in sorted(shares, key=lambda h: (floors[h] - shares[h], h))[:left]:
        floors[hour] += 1
    return {hour: n * unit for hour, n in floors.items() if n}


def hourly_costs(
    *,
    org: Org,
    start: datetime,
    end: datetime,
    currency: str,
    products: Iterable[Product] | None = None,
) -> dict[int, dict[datetime, Decimal]]:
    """``{product id: {hour: amount}}`` for the hours of ``[start, end)``: the product lines
    of every rated period of ``org`` in ``currency`` that overlaps the range, spread as the
    module says. A few queries per period."""
    wanted = {p.pk for p in products} if products is not None else None
    result: dict[int, dict[datetime, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    periods = BillingPeriod.objects.filter(
        org=org, currency=currency, start__lt=end, end__gt=start, rated_as_of__isnull=False
    ).order_by("start")
    for period in periods:
        lines: dict[int, list[RatedCharge]] = defaultdict(list)
        charges = RatedCharge.objects.filter(org=org, period=period, product__isnull=False)
        for charge in charges.select_related("product__meter"):
            if charge.product_id is not None and (wanted is None or charge.product_id in wanted):
                lines[charge.product_id].append(charge)
        if not lines:
            continue
        reserved: dict[int, dict[datetime, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for row in ReservationUsage.objects.filter(org=org, period=period).select_related(
            "reservation"
        ):
            for offset, r, _ in row.hours:
                hour = period.start + HOUR * int(offset)
                reserved[row.reservation.product_id][hour] += Decimal(r)
        horizon = min(period.end, _hour_ceil(period.rated_as_of or period.start))
        for product_id, product_lines in lines.items():
            product = product_lines[0].product
            assert product is not None
            in_term = reserved.get(product_id, {})
            usage = (
                hourly_usage(org_id=org.pk, product=product, start=period.start, end=horizon)
                if any(c.kind in (Kind.BURST, Kind.ON_DEMAND) for c in product_lines)
                else {}
            )
            weights: dict[str, dict[datetime, Decimal]] = {
                Kind.RESERVATION: dict(in_term),
                Kind.BURST: {h: max(ZERO, usage.get(h, ZERO) - r) for h, r in in_term.items()},
                Kind.ON_DEMAND: {h: u for h, u in usage.items() if h not in in_term},
            }
            hours = result[product_id]
            for charge in product_lines:
                if not charge.amount:
                    continue
                parts = spread(charge.amount, weights.get(charge.kind, {}), currency)
                if not parts:  # nothing to spread by: the period's first hour holds it
                    parts = {period.start: charge.amount}
                for hour, part in parts.items():
                    if start <= hour < end:
                        hours[hour] += part
    return result
