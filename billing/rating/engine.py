"""Rate one billing period (SPEC §6 steps 1-4): a pure function of the rollups, the contract
and "now".

``compute_period`` reads and never writes, so it can rate an open period "as of now" for the
portal, the final rating of a closing period, and a re-rating of an invoiced period whose
difference from the invoice becomes adjustment lines (step 5, in the invoicing app).
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from core.errors import DomainError, ErrorCode, ErrorKind

from ..models import (
    BillingPeriod,
    Contract,
    Product,
    RateCard,
    RatedCharge,
    Reservation,
    SpendCommitment,
)
from ..money import quantize_price, quantize_quantity, round_amount
from .batch import RatingBatch, inputs_of_many
from .periods import cycle, midnight
from .pricing import EffectivePrice, effective_price, price_pieces, price_quantity
from .terms import Term, TermSpan, days_text, term_on, term_spans, text
from .usage import additive, orgs_hourly_usage, orgs_period_usages

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
Kind = RatedCharge.Kind
ZERO = Decimal(0)
FORECAST_METHOD = (
    "Linear run-rate: each product's usage per elapsed hour, extended to the period's end and "
    "priced through its price model (tiers apply to the projected total; each dated term's "
    "usage extended alike); reservations at their full take-or-pay amount; then the minimum "
    "spend."
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
    """One rated line: ``quantity`` × ``unit_price`` (the net price, after any discount) =
    ``amount`` before rounding; ``list_unit_price`` is the price before a percent discount
    (EN 16931 BT-148), None when the line is not discounted (list or custom price)."""

    product: Product | None
    kind: str
    line: int
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    description: str = ""
    list_unit_price: Decimal | None = None

    @property
    def key(self) -> tuple[str | None, str, int]:
        return (self.product.key if self.product else None, self.kind, self.line)


@dataclass(frozen=True)
class Netting:
    """One reservation's share of its product's hourly netting (see ``ReservationUsage``):
    ``hours`` = [[offset, R_i(h), its share of U(h)], ...]."""

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


def rate_card_for(contract: Contract, at: datetime, batch: RatingBatch | None = None) -> RateCard:
    card = (batch or RatingBatch()).rate_card(contract.rate_card_key, at.date())
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


def level_on(reservation: Reservation, day: date) -> Decimal:
    """R_i on ``day`` (ramps change it at midnight); the caller checks the term."""
    quantity = reservation.quantity
    for ramp in reservation.ramps.all():
        if ramp.starts <= day:
            quantity = ramp.quantity
    return quantity


def joined(*parts: str) -> str:
    """A line's description from its non-empty parts."""
    return "; ".join(part for part in parts if part)


def reservation_text(reservation: Reservation, first: date, last: date) -> str:
    """The quantities a reservation holds over ``[first, last)`` (its term clipped to the
    period), each with its days: "8 reserved 2026-10-01 to 2026-10-15, 16 reserved
    2026-10-16 to 2026-10-31", and "(amendment)" when an amendment added it."""
    first, last = max(first, reservation.start), min(last, reservation.end)
    cuts = sorted(
        {first, last} | {r.starts for r in reservation.ramps.all() if first < r.starts < last}
    )
    steps: list[tuple[Decimal, date, date]] = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        quantity = level_on(reservation, start)
        if steps and steps[-1][0] == quantity:
            steps[-1] = (quantity, steps[-1][1], end)
        else:
            steps.append((quantity, start, end))
    words = ", ".join(f"{text(q)} reserved {days_text([(a, b)])}" for q, a, b in steps)
    return words + (" (amendment)" if reservation.amendment_id else "")


class _Context:
    """What rating one period needs, loaded once (through its batch's shared reads)."""

    def __init__(self, period: BillingPeriod, batch: RatingBatch) -> None:
        self.period, self.batch = period, batch
        self.first, self.last = period.start.date(), period.end.date()
        inputs = batch.inputs(period)
        self.contract = inputs.contract
        self.currency = self.contract.currency
        self.rounding = self.contract.issuer.rounding
        card = rate_card_for(self.contract, period.start, batch)
        if card.currency != self.currency:
            raise RatingError(f"rate card {card} is in {card.currency}, not {self.currency}")
        # The priced products come with their prices (and meters), in the products' order.
        prices = batch.prices(card)
        self.prices = {p.product_id: p for p in prices}
        # Dated terms that hold on some day of the period (SPEC §3 "Amendments").
        self.terms = inputs.terms
        self.reservations: dict[int, list[Reservation]] = defaultdict(list)
        for reservation in inputs.reservations:
            self.reservations[reservation.product_id].append(reservation)
        ids = set(self.prices) | set(self.reservations) | {t.product_id for t in self.terms}
        self.products: list[Product] = [p.product for p in prices]
        if ids - set(self.prices) - {None}:  # a product reserved or termed, not on the card
            self.products = batch.products(i for i in ids if i is not None)
        self.commitments = inputs.commitments

    def round(self, amount: Decimal) -> Decimal:
        return round_amount(amount, self.currency, self.rounding)

    def price_under(self, product: Product, term: Term) -> EffectivePrice | None:
        return effective_price(
            self.prices.get(product.pk),
            custom_unit_price=term.unit_price,
            discount_percent=term.discount_percent,
        )

    def discount_words(
        self, product: Product, term: Term, tier: int = 0, *, reference: bool = False
    ) -> str:
        """The discount ``term`` takes off the list price of ``tier`` (``reference``: one
        unit's price, as a burst is priced), as the line states it: "10% off list price
        2.50"; "" when the term prices at list or by a custom price. The unit price stays
        the discounted one, so quantity × unit price = amount."""
        if term.unit_price is not None or not term.discount_percent:
            return ""
        listed = self.price_under(product, Term())
        if listed is None:
            return ""
        if reference:
            price = listed.reference_unit_price
        elif listed.tiers:
            price = listed.tiers[min(tier, len(listed.tiers) - 1)].unit_price
        elif listed.unit_price is not None:
            price = listed.unit_price
        else:
            return ""
        return term.discount_text(price)

    def spans(self, product: Product) -> list[TermSpan]:
        return term_spans(self.terms, product.pk, self.first, self.last)

    def term_on(self, product: Product, day: date) -> Term:
        return term_on(self.terms, product.pk, day)


def compute_period(
    *, period: BillingPeriod, as_of: datetime, batch: RatingBatch | None = None
) -> Rating:
    """The charges of ``period`` with the usage of the hours before ``as_of`` (and, once
    ``as_of`` reaches the period's end, its minimum spend). Reads only: through ``batch``,
    the reads it shares with the other periods of a batch (``batch_prepare``)."""
    ctx = _Context(period, batch or RatingBatch())
    rating = Rating(period=period, as_of=as_of, currency=ctx.currency)
    horizon = _horizon(period, as_of)
    elapsed = Decimal((horizon - period.start) // HOUR)
    total_hours = Decimal((period.end - period.start) // HOUR)
    scale = total_hours / elapsed if elapsed else ZERO
    forecast = ZERO
    totals = _on_demand_totals(ctx, horizon)
    for product in ctx.products:
        reservations = ctx.reservations.get(product.pk, [])
        usage: dict[datetime, Decimal] | None
        if horizon <= period.start:
            usage = {}
        elif reservations:
            # Netting is per hour: only reserved products need their hours in Python.
            usage = ctx.batch.hourly_usage(period, product, period.start, horizon)
        else:
            usage = None
        reserved_days: set[date] = set()
        reserved_use = ZERO
        if reservations:
            assert usage is not None
            stack = _Stack(ctx, product, reservations, horizon, usage)
            reserved_days = stack.days
            rating.netting.extend(stack.netting)
            rating.lines.extend(stack.lines)
            forecast += stack.projected(scale)
            reserved_use = sum((n.used for n in stack.netting), ZERO)
        spans = ctx.spans(product)
        parts = _on_demand_parts(product, spans, horizon, usage, reserved_days, totals)
        total = sum((q for *_, q in parts), ZERO)
        rating.usage[product.key] = str(quantize_quantity(total + reserved_use))
        changed = len({span.term.key for span in spans}) > 1
        lines, projected = _on_demand_lines(ctx, product, parts, scale, changed=changed)
        rating.lines.extend(lines)
        forecast += projected
    if rating.complete:
        rating.lines.extend(_minimum_lines(ctx, rating.subtotal))
        rating.forecast = rating.subtotal
    else:
        rating.forecast = forecast + sum(
            (line.amount for line in _minimum_lines(ctx, forecast, projected=True)), ZERO
        )
    return rating


class _Stack:
    """SPEC §6 step 2 for one product: its reservations in force stack, R(h) = Σ R_i(h);
    covered and burst are netted once against the sum; the burst is billed at the burst price
    of the reservation in force that started last (its own, else the on-demand price under
    the terms of that day). One ``reservation`` line per reservation at its own price, one
    ``covered`` line, and one ``burst`` line per burst price that billed some hours."""

    def __init__(
        self,
        ctx: _Context,
        product: Product,
        reservations: list[Reservation],
        horizon: datetime,
        usage: dict[datetime, Decimal],
    ) -> None:
        self.ctx, self.product = ctx, product
        period = ctx.period
        order = sorted(reservations, key=lambda r: (r.start, r.pk))  # the oldest first
        reserved = {r.pk: ZERO for r in order}
        full = {r.pk: ZERO for r in order}
        covered = {r.pk: ZERO for r in order}
        burst = {r.pk: ZERO for r in order}
        hours: dict[int, list[list[str | int]]] = {r.pk: [] for r in order}
        # Burst groups, by who sets the price: (reservation, the day's term when it has none).
        groups: dict[tuple[int, tuple[int | None, int | None] | None], list] = {}
        self.days: set[date] = set()
        day = ctx.first
        while day < ctx.last:
            held = [r for r in order if r.start <= day < r.end]
            if held:
                self.days.add(day)
                # (reservation, its pk, R_i on the day, as the netting writes it): all day long.
                levels = []
                for r in held:
                    q = level_on(r, day)
                    levels.append((r, r.pk, q, compact(q)))
                for _, pk, q, _ in levels:
                    full[pk] += q * 24
                setter = max(held, key=lambda r: (r.start, r.pk))
                term = None if setter.burst_unit_price is not None else ctx.term_on(product, day)
                group_key = (setter.pk, term.key if term else None)
                hour = midnight(day)
                first_offset = (hour - period.start) // HOUR
                for offset in range(first_offset, first_offset + 24):
                    if hour >= horizon:
                        break
                    u = usage.get(hour, ZERO)
                    left = u
                    for r, pk, q, q_text in levels:
                        share = min(q, left)
                        left -= share
                        reserved[pk] += q
                        covered[pk] += share
                        if r is setter:
                            share += left
                        hours[pk].append([offset, q_text, compact(quantize_quantity(share))])
                    if left:
                        burst[setter.pk] += left
                        group = groups.setdefault(group_key, [setter, term, ZERO, []])
                        group[2] += left
                        if not group[3] or group[3][-1] != day:
                            group[3].append(day)
                    hour += HOUR
            day += DAY
        exact = quantize_quantity
        self.netting = [
            Netting(
                r,
                exact(reserved[r.pk]),
                exact(covered[r.pk] + burst[r.pk]),
                exact(covered[r.pk]),
                exact(burst[r.pk]),
                hours[r.pk],
            )
            for r in order
        ]
        self.full = {r.pk: (r, full[r.pk]) for r in order}
        self.lines: list[ChargeLine] = [
            ChargeLine(
                product,
                Kind.RESERVATION,
                index,
                n.reserved,
                n.reservation.unit_price,
                ctx.round(n.reserved * n.reservation.unit_price),
                reservation_text(n.reservation, ctx.first, ctx.last),
            )
            for index, n in enumerate(self.netting)
        ]
        self.lines.append(
            ChargeLine(
                product, Kind.COVERED, 0, sum((n.covered for n in self.netting), ZERO), ZERO, ZERO
            )
        )
        self.bursts: list[tuple[Decimal, Decimal]] = []  # (quantity, price) per burst line
        for index, (setter, term, quantity, days) in enumerate(groups.values()):
            price, listed = self._burst_price(setter, term)
            quantity = exact(quantity)
            self.bursts.append((quantity, price))
            description = ""
            if len(groups) > 1:
                description = days_text((d, d + DAY) for d in days)
            if term is not None:  # priced on demand under the day's term: state its discount
                description = joined(description, ctx.discount_words(product, term, reference=True))
            self.lines.append(
                ChargeLine(
                    product,
                    Kind.BURST,
                    index,
                    quantity,
                    price,
                    ctx.round(quantity * price),
                    description,
                    listed,
                )
            )

    def _burst_price(
        self, setter: Reservation, term: Term | None
    ) -> tuple[Decimal, Decimal | None]:
        """(net unit price, list unit price or None): the reservation's burst price (no
        list price), else one unit's on-demand price under ``term`` and its list price."""
        if setter.burst_unit_price is not None:
            return quantize_price(setter.burst_unit_price), None
        assert term is not None
        price = self.ctx.price_under(self.product, term)
        if price is None:
            raise RatingError(
                f"product {self.product.key!r}: burst above the reservation has no price "
                "(no burst_unit_price and no on-demand price)"
            )
        listed = price.reference_list_price
        return (
            quantize_price(price.reference_unit_price),
            None if listed is None else quantize_price(listed),
        )

    def projected(self, scale: Decimal) -> Decimal:
        """The reservations at their full take-or-pay amount, the burst extended."""
        amount = sum(
            (
                self.ctx.round(quantize_quantity(full) * r.unit_price)
                for r, full in self.full.values()
            ),
            ZERO,
        )
        return amount + sum(
            (self.ctx.round(quantize_quantity(q * scale) * p) for q, p in self.bursts), ZERO
        )


OnDemandPart = tuple[TermSpan, list[tuple[date, date]], Decimal]


UsageTotals = dict[tuple[int, datetime, datetime], Decimal]


def _on_demand_ranges(span: TermSpan, reserved_days: set[date]) -> list[tuple[date, date]]:
    """The day ranges of ``span`` that no reservation holds, in order."""
    ranges: list[tuple[date, date]] = []
    day = span.start
    while day < span.end:
        if day not in reserved_days:
            if ranges and ranges[-1][1] == day:
                ranges[-1] = (ranges[-1][0], day + DAY)
            else:
                ranges.append((day, day + DAY))
        day += DAY
    return ranges


def _hours(ranges: list[tuple[date, date]], horizon: datetime) -> list[tuple[datetime, datetime]]:
    """The non-empty ``[low, high)`` hours of day ``ranges`` before ``horizon``."""
    clipped = [(midnight(start), min(midnight(end), horizon)) for start, end in ranges]
    return [(low, high) for low, high in clipped if low < high]


def _on_demand_totals(ctx: _Context, horizon: datetime) -> UsageTotals:
    """The usage of every range that a product without reservations bills on demand, by
    (product, start, end), read at once (``period_usages``: one query for the meters whose
    hours add) rather than one query per product and term."""
    wanted = _totals_wanted(ctx, horizon)
    if not wanted:
        return {}
    values = ctx.batch.period_usages(ctx.period, wanted)
    return {(p.pk, low, high): v for (p, low, high), v in zip(wanted, values, strict=True)}


def _totals_wanted(ctx: _Context, horizon: datetime) -> list[tuple[Product, datetime, datetime]]:
    """The ranges ``_on_demand_totals`` reads, in order."""
    if horizon <= ctx.period.start:
        return []
    return [
        (product, low, high)
        for product in ctx.products
        if not ctx.reservations.get(product.pk)
        for span in ctx.spans(product)
        for low, high in _hours(_on_demand_ranges(span, set()), horizon)
    ]


def _horizon(period: BillingPeriod, as_of: datetime) -> datetime:
    return min(period.end, max(period.start, hour_ceil(as_of)))


def batch_prepare(*, batch: RatingBatch, periods: Sequence[BillingPeriod], as_of: datetime) -> None:
    """Read for ``batch`` what its ``periods`` need, in a few queries for all of them: their
    contracts' inputs, the on-demand totals (one query per set of ranges, grouped by org) and
    the hours of each reserved product (one query per product and range, grouped by org and
    hour). Call before locking any of them, outside their transactions. An optimization only:
    a period whose inputs cannot be read here (it will fail in its own rating, and be
    quarantined there) is left out, and reads what it needs itself."""
    batch.hold(periods)
    batch.keep_inputs(inputs_of_many(periods))
    totals: dict[tuple[tuple[int, datetime, datetime], ...], list[BillingPeriod]] = defaultdict(
        list
    )
    ranges: dict[
        tuple[tuple[int, datetime, datetime], ...], list[tuple[Product, datetime, datetime]]
    ] = {}
    hourly: dict[tuple[int, datetime, datetime], list[BillingPeriod]] = defaultdict(list)
    products: dict[int, Product] = {}
    for period in periods:
        try:
            ctx = _Context(period, batch)
        except Exception:  # it fails again in its own rating, and is quarantined there
            continue
        horizon = _horizon(period, as_of)
        wanted = _totals_wanted(ctx, horizon)
        if wanted and all(additive(product) for product, _, _ in wanted):
            key = tuple((p.pk, low, high) for p, low, high in wanted)
            totals[key].append(period)
            ranges[key] = wanted
        if horizon > period.start:
            for product in ctx.products:
                if ctx.reservations.get(product.pk):
                    products[product.pk] = product
                    hourly[(product.pk, period.start, horizon)].append(period)
    for key, group in totals.items():
        found = orgs_period_usages(org_ids=sorted({p.org_id for p in group}), wanted=ranges[key])
        for period in group:
            batch.keep_totals(period.pk, key, found[period.org_id])
    for (product_pk, start, end), group in hourly.items():
        usage = orgs_hourly_usage(
            org_ids=sorted({p.org_id for p in group}),
            product=products[product_pk],
            start=start,
            end=end,
        )
        if usage is None:
            continue
        for period in group:
            batch.keep_hourly(period.pk, (product_pk, start, end), usage[period.org_id])


def _on_demand_parts(
    product: Product,
    spans: list[TermSpan],
    horizon: datetime,
    usage: dict[datetime, Decimal] | None,
    reserved_days: set[date],
    totals: UsageTotals,
) -> list[OnDemandPart]:
    """The period's hours before ``horizon`` that no reservation holds, cut by the dated
    term in force: (span, its on-demand day ranges, usage in billing units), in order. A
    product's hourly ``usage`` when it was read (reserved products), else its ``totals``."""
    parts: list[OnDemandPart] = []
    for span in spans:
        ranges = _on_demand_ranges(span, reserved_days)
        quantity = ZERO
        for low, high in _hours(ranges, horizon):
            if usage is None:
                quantity += totals[(product.pk, low, high)]
            else:
                quantity += sum((v for h, v in usage.items() if low <= h < high), ZERO)
        if ranges:
            parts.append((span, ranges, quantity))
    return parts


def _on_demand_lines(
    ctx: _Context,
    product: Product,
    parts: list[OnDemandPart],
    scale: Decimal,
    *,
    changed: bool,
) -> tuple[list[ChargeLine], Decimal]:
    """SPEC §6 step 3, with dated terms: each part is priced under its term; tiers apply to
    the period's total, each part taking its place in it in order (a later part continues
    the tiers where the earlier ones left them). One line per term and tier; when the
    product's terms ``changed`` inside the period, each line's description names its term
    and days. Also the forecast of these lines at the period's end."""
    priced = [(span, ranges, q, ctx.price_under(product, span.term)) for span, ranges, q in parts]
    total = sum((q for _, _, q, _ in priced), ZERO)
    # Usage of a product without a price under its term is not billed: it is listed as unbilled
    # usage, reason `no_price` (SPEC §3), and billed once a price is added and it is rated.
    used = [(span, ranges, q, price) for span, ranges, q, price in priced if q and price]
    if not changed:
        # One term: the period's pricing as it always was (and the forecast of it).
        chosen = used[0] if used else next((x for x in priced if x[3] is not None), None)
        if chosen is None:
            return [], ZERO
        term, price = chosen[0].term, chosen[3]
        assert price is not None
        single = [
            ChargeLine(
                product, Kind.ON_DEMAND, p.line, p.quantity, p.unit_price, p.amount,
                joined(p.description, ctx.discount_words(product, term, p.line)),
                p.list_unit_price,
            )
            for p in price_quantity(price, total, currency=ctx.currency, rounding=ctx.rounding)
        ]  # fmt: skip
        extended = price_quantity(
            price, total * scale, currency=ctx.currency, rounding=ctx.rounding
        )
        return single, sum((p.amount for p in extended), ZERO)
    lines = _term_lines(ctx, product, used, total)
    projected = _term_lines(ctx, product, used, total, scale=scale)
    return lines, sum((line.amount for line in projected), ZERO)


def _term_lines(
    ctx: _Context,
    product: Product,
    used: Sequence[tuple[TermSpan, list[tuple[date, date]], Decimal, EffectivePrice | None]],
    total: Decimal,
    *,
    scale: Decimal = Decimal(1),
) -> list[ChargeLine]:
    """The lines of several terms; ``scale`` extends every quantity (the forecast)."""
    found: dict[tuple[tuple[int | None, int | None], int], list[Any]] = {}
    before = ZERO
    for span, ranges, quantity, price in used:
        assert price is not None
        for piece in price_pieces(
            price, quantity * scale, before=before * scale, total=total * scale
        ):
            entry = found.setdefault((span.term.key, piece.tier), [span.term, piece, ZERO, []])
            entry[2] += piece.quantity
            entry[3].extend(ranges)
        before += quantity
    lines = []
    for index, (term, piece, quantity, ranges) in enumerate(found.values()):
        quantity = quantize_quantity(quantity)
        label = ctx.discount_words(product, term, piece.tier) or term.label
        words = f"{label}, {days_text(ranges)}"
        lines.append(
            ChargeLine(
                product,
                Kind.ON_DEMAND,
                index,
                quantity,
                piece.unit_price,
                ctx.round(quantity * piece.unit_price),
                f"{words}; {piece.label}" if piece.label else words,
                piece.list_unit_price,
            )
        )
    return lines


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
