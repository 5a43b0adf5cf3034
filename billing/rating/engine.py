"""Rate one billing period (SPEC §6 steps 1-4): a pure function of the rollups, the contract
and "now".

``compute_period`` reads and never writes, so it can rate an open period "as of now" for the
portal, the final rating of a closing period, and a re-rating of an invoiced period whose
difference from the invoice becomes adjustment lines (step 5, in the invoicing app).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum

from core.errors import DomainError, ErrorCode, ErrorKind

from ..models import (
    BillingPeriod,
    Contract,
    ContractPrice,
    Price,
    Product,
    RateCard,
    RatedCharge,
    Reservation,
    SpendCommitment,
)
from ..money import quantize_price, quantize_quantity, round_amount
from .periods import cycle, midnight
from .pricing import EffectivePrice, PricedLine, effective_price, price_quantity
from .usage import hourly_usage, period_usage

HOUR = timedelta(hours=1)
Kind = RatedCharge.Kind
ZERO = Decimal(0)
FORECAST_METHOD = (
    "Linear run-rate: each product's usage per elapsed hour, extended to the period's end and "
    "priced through its price model (tiers apply to the projected total); reservations at "
    "their full take-or-pay amount; then the minimum spend."
)


class RatingError(DomainError):
    """The contract cannot be rated as configured (message names what is missing)."""

    codes = {
        "rating_not_configured": ErrorCode(
            ErrorKind.INVALID, "The contract cannot be rated as configured."
        )
    }

    def __init__(self, message: str) -> None:
        super().__init__("rating_not_configured", message)


@dataclass(frozen=True)
class ChargeLine:
    product: Product | None
    kind: str
    line: int
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    description: str = ""

    @property
    def key(self) -> tuple[str | None, str, int]:
        return (self.product.key if self.product else None, self.kind, self.line)


@dataclass(frozen=True)
class Netting:
    """One reservation's hourly netting: ``hours`` = [[offset, R(h), U(h)], ...]."""

    reservation: Reservation
    reserved: Decimal
    used: Decimal
    covered: Decimal
    burst: Decimal
    hours: list[list[str | int]]


@dataclass
class Rating:
    period: BillingPeriod
    as_of: datetime
    currency: str
    lines: list[ChargeLine] = field(default_factory=list)
    netting: list[Netting] = field(default_factory=list)
    usage: dict[str, str] = field(default_factory=dict)  # product key → billing units
    forecast: Decimal = ZERO

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def complete(self) -> bool:
        return self.as_of >= self.period.end


def compact(number: Decimal) -> str:
    """A decimal string without trailing zeros: 720 of them per reservation and period."""
    return f"{number.normalize():f}" if number else "0"


def hour_ceil(moment: datetime) -> datetime:
    floor = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + HOUR


def rate_card_for(contract: Contract, at: datetime) -> RateCard:
    card = (
        RateCard.objects.filter(key=contract.rate_card_key, effective_from__lte=at.date())
        .order_by("-effective_from")
        .first()
    )
    if card is None:
        raise RatingError(
            f"contract {contract.key!r}: rate card {contract.rate_card_key!r} has no version "
            f"in force on {at.date()}"
        )
    return card


def reserved_at(
    reservation: Reservation, ramps: list[tuple[datetime, Decimal]], hour: datetime
) -> Decimal:
    quantity = reservation.quantity
    for starts, step in ramps:
        if starts <= hour:
            quantity = step
    return quantity


class _Context:
    """What rating one period needs, loaded once."""

    def __init__(self, period: BillingPeriod) -> None:
        self.period = period
        self.contract = Contract.objects.select_related("issuer").get(pk=period.contract_id)
        self.currency = self.contract.currency
        self.rounding = self.contract.issuer.rounding
        card = rate_card_for(self.contract, period.start)
        if card.currency != self.currency:
            raise RatingError(f"rate card {card} is in {card.currency}, not {self.currency}")
        self.prices = {p.product_id: p for p in Price.objects.filter(rate_card=card)}
        overrides = ContractPrice.objects.filter(org_id=period.org_id, contract=self.contract)
        self.custom = {o.product_id: o for o in overrides}
        self.reservations: dict[int, list[Reservation]] = defaultdict(list)
        for reservation in (
            Reservation.objects.filter(
                org_id=period.org_id,
                contract=self.contract,
                start__lt=period.end.date(),
                end__gt=period.start.date(),
            )
            .prefetch_related("ramps")
            .order_by("product_id", "start")
        ):
            self.reservations[reservation.product_id].append(reservation)
        ids = set(self.prices) | set(self.reservations) | {k for k in self.custom if k}
        self.products = Product.objects.select_related("meter").filter(pk__in=ids).order_by("key")
        self.commitments = {
            c.per: c.amount
            for c in SpendCommitment.objects.filter(org_id=period.org_id, contract=self.contract)
        }

    def round(self, amount: Decimal) -> Decimal:
        return round_amount(amount, self.currency, self.rounding)

    def on_demand_price(self, product: Product) -> EffectivePrice | None:
        own = self.custom.get(product.pk)
        overall = self.custom.get(None)
        discount = own.discount_percent if own else overall.discount_percent if overall else ZERO
        return effective_price(
            self.prices.get(product.pk),
            custom_unit_price=own.unit_price if own else None,
            discount_percent=discount,
        )


def compute_period(*, period: BillingPeriod, as_of: datetime) -> Rating:
    """The charges of ``period`` with the usage of the hours before ``as_of`` (and, once
    ``as_of`` reaches the period's end, its minimum spend). Reads only."""
    ctx = _Context(period)
    rating = Rating(period=period, as_of=as_of, currency=ctx.currency)
    horizon = min(period.end, max(period.start, hour_ceil(as_of)))
    elapsed = Decimal((horizon - period.start) // HOUR)
    total_hours = Decimal((period.end - period.start) // HOUR)
    scale = total_hours / elapsed if elapsed else ZERO
    forecast = ZERO
    for product in ctx.products:
        price = ctx.on_demand_price(product)
        reservations = ctx.reservations.get(product.pk, [])
        if horizon <= period.start:
            usage: dict[datetime, Decimal] = {}
        elif reservations:
            # Netting is per hour: only reserved products need their hours in Python.
            usage = hourly_usage(
                org_id=period.org_id, product=product, start=period.start, end=horizon
            )
        else:
            total = period_usage(
                org_id=period.org_id, product=product, start=period.start, end=horizon
            )
            usage = {period.start: total} if total else {}
        rating.usage[product.key] = str(quantize_quantity(sum(usage.values(), ZERO)))
        on_demand = dict(usage)
        for index, reservation in enumerate(reservations):
            netting, full_reserved = _net(reservation, period, horizon, usage)
            for hour in list(on_demand):
                if midnight(reservation.start) <= hour < midnight(reservation.end):
                    del on_demand[hour]
            rating.netting.append(netting)
            lines, projected = _reservation_lines(
                ctx, product, index, reservation, netting, price, full_reserved, scale
            )
            rating.lines.extend(lines)
            forecast += projected
        quantity = sum(on_demand.values(), ZERO)
        if quantity and price is None:
            raise RatingError(f"product {product.key!r} has usage but no price on the contract")
        if price is not None:
            rating.lines.extend(_on_demand_lines(ctx, product, price, quantity))
            forecast += sum(
                (
                    line.amount
                    for line in price_quantity(
                        price, quantity * scale, currency=ctx.currency, rounding=ctx.rounding
                    )
                ),
                ZERO,
            )
    if rating.complete:
        rating.lines.extend(_minimum_lines(ctx, rating.subtotal))
        rating.forecast = rating.subtotal
    else:
        rating.forecast = forecast + sum(
            (line.amount for line in _minimum_lines(ctx, forecast, projected=True)), ZERO
        )
    return rating


def _net(
    reservation: Reservation,
    period: BillingPeriod,
    horizon: datetime,
    usage: dict[datetime, Decimal],
) -> tuple[Netting, Decimal]:
    """Per hour of the term inside [period start, horizon): covered = min(U, R),
    burst = max(0, U − R). Also Σ R(h) over the whole period, for the forecast."""
    ramps = [(midnight(r.starts), r.quantity) for r in reservation.ramps.all()]
    ramps.sort()
    first = max(period.start, midnight(reservation.start))
    last = min(period.end, midnight(reservation.end))
    reserved = used = covered = burst = full = ZERO
    hours: list[list[str | int]] = []
    hour = first
    while hour < last:
        r = reserved_at(reservation, ramps, hour)
        full += r
        if hour < horizon:
            u = usage.get(hour, ZERO)
            reserved += r
            used += u
            covered += min(u, r)
            burst += max(ZERO, u - r)
            offset = (hour - period.start) // HOUR
            hours.append([offset, compact(r), compact(quantize_quantity(u))])
        hour += HOUR
    q = quantize_quantity
    netting = Netting(reservation, q(reserved), q(used), q(covered), q(burst), hours)
    return netting, full


def _reservation_lines(
    ctx: _Context,
    product: Product,
    index: int,
    reservation: Reservation,
    netting: Netting,
    price: EffectivePrice | None,
    full_reserved: Decimal,
    scale: Decimal,
) -> tuple[list[ChargeLine], Decimal]:
    """The reservation, covered and burst lines; and their forecast to the period's end."""
    if reservation.burst_unit_price is not None:
        burst_price = reservation.burst_unit_price
    elif price is not None:
        burst_price = price.reference_unit_price
    else:
        burst_price = None
    lines = [
        ChargeLine(
            product,
            Kind.RESERVATION,
            index,
            netting.reserved,
            reservation.unit_price,
            ctx.round(netting.reserved * reservation.unit_price),
            f"{reservation.quantity.normalize():f} reserved, {reservation.start} to "
            f"{reservation.end}",
        ),
        ChargeLine(product, Kind.COVERED, index, netting.covered, ZERO, ZERO),
    ]
    projected = ctx.round(quantize_quantity(full_reserved) * reservation.unit_price)
    if netting.burst:
        if burst_price is None:
            raise RatingError(
                f"product {product.key!r}: burst above the reservation has no price "
                "(no burst_unit_price and no on-demand price)"
            )
        burst_price = quantize_price(burst_price)
        lines.append(
            ChargeLine(
                product,
                Kind.BURST,
                index,
                netting.burst,
                burst_price,
                ctx.round(netting.burst * burst_price),
            )
        )
        projected += ctx.round(quantize_quantity(netting.burst * scale) * burst_price)
    return lines, projected


def _on_demand_lines(
    ctx: _Context, product: Product, price: EffectivePrice, quantity: Decimal
) -> list[ChargeLine]:
    priced: list[PricedLine] = price_quantity(
        price, quantity, currency=ctx.currency, rounding=ctx.rounding
    )
    return [
        ChargeLine(
            product, Kind.ON_DEMAND, p.line, p.quantity, p.unit_price, p.amount, p.description
        )
        for p in priced
    ]


def _minimum_lines(ctx: _Context, spent: Decimal, *, projected: bool = False) -> list[ChargeLine]:
    """Step 4. Per period: the commitment, prorated by hours for a partial period, less the
    period's lines. Per term: billed in the term's last period, once it is over, for what all
    of the term's periods (their true-ups included) fell short."""
    period = ctx.period
    lines = []
    per_period = ctx.commitments.get(SpendCommitment.Per.PERIOD)
    if per_period:
        cycle_start, cycle_end = cycle(period.start.date(), ctx.contract.billing_day)
        share = Decimal((period.end - period.start) // HOUR) / Decimal(
            (midnight(cycle_end) - midnight(cycle_start)) // HOUR
        )
        minimum = ctx.round(per_period * share)
        if spent < minimum:
            description = f"minimum {minimum} per period" + (
                f" ({per_period} prorated)" if share != 1 else ""
            )
            lines.append(
                ChargeLine(
                    None,
                    Kind.MINIMUM_TRUE_UP,
                    0,
                    Decimal(1),
                    minimum - spent,
                    minimum - spent,
                    description,
                )
            )
            spent = minimum
    per_term = ctx.commitments.get(SpendCommitment.Per.TERM)
    contract_end = ctx.contract.end
    if per_term and contract_end and period.end == midnight(contract_end):
        earlier = (
            BillingPeriod.objects.filter(org_id=period.org_id, contract=ctx.contract)
            .exclude(pk=period.pk)
            .aggregate(total=Sum("subtotal"))["total"]
            or ZERO
        )
        if earlier + spent < per_term:
            short = per_term - earlier - spent
            lines.append(
                ChargeLine(
                    None,
                    Kind.MINIMUM_TRUE_UP,
                    1,
                    Decimal(1),
                    short,
                    short,
                    f"minimum {per_term} over the term" + (" (projected)" if projected else ""),
                )
            )
    return lines
