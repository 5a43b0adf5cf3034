"""What the org would have paid for its real past usage under the deal, month by month,
next to what its current terms charge for the same usage (SPEC §3 "Deal").

- The window is the org's last ``months`` complete calendar months before ``as_of``.
- The deal is replayed as if it had started on the window's first month: every date of its
  lines and ramps moves back by the same number of months, so month 1 of the window is
  month 1 of the deal (ramps fall in the same month of the term).
- Usage per product and hour comes from the rating engine (``hourly_usage``: one set-based
  query over the hourly rollups per product; no event is read).
- Under the deal, per hour (SPEC §6 step 2): the reservation is billed for every hour of
  the term, used or not; usage up to the reserved quantity is covered; above it is burst, at
  the line's burst price or else the rate card's on-demand price. Usage outside the deal's
  term is on demand at the rate card's price model.
- Current terms: the contract in force at the month's start, rated by the engine's
  ``compute_period`` over the month (not saved), keeping the lines of the deal's products;
  months without a contract are priced at the deal's rate card (list price).
- A deal that amends a contract compares "current contract" with "current contract + this
  amendment" (SPEC §3 "Amendments"): both are the engine's own rating of each month of the
  contract, the second with the amendment's terms (moved back like a deal's) added to the
  contract inside a savepoint that is rolled back. So stacking, burst prices and dated
  discounts are exactly the invoice's; nothing is written.
- The default window is every month that has usage: from the org's first month with usage
  to the last complete month (at most ``MAX_MONTHS``).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from metering.models import HourlyRollup

from ..models import (
    Amendment,
    BillingPeriod,
    Contract,
    ContractPrice,
    Price,
    Product,
    Reservation,
    ReservationRamp,
)
from ..money import round_amount
from ..rating.engine import RatingError, compute_period
from ..rating.periods import midnight
from ..rating.pricing import EffectivePrice, effective_price, price_quantity
from ..rating.usage import hourly_usage
from .economics import line_end, ramp_steps, rate_card_at
from .models import Deal, DealLine, DealTerm
from .schedule import Step, add_months, level, ramped, unit_hours

DEFAULT_MONTHS = 6

ZERO = Decimal(0)
MAX_MONTHS = 24


@dataclass(frozen=True)
class SimMonth:
    month: date
    usage: Decimal  # GPU-hours of the deal's products
    current: Decimal | None  # None: the current terms cannot price it (see ``basis``)
    basis: str  # the contract key, "list price", or why it could not be priced
    current_burst_hours: int
    deal: Decimal
    reserved: Decimal  # GPU-hours reserved under the deal
    covered: Decimal
    burst: Decimal  # GPU-hours above the reservation
    burst_hours: int  # hours with any burst
    on_demand: Decimal  # GPU-hours outside the deal's term

    @property
    def difference(self) -> Decimal | None:
        return None if self.current is None else self.deal - self.current


@dataclass
class Simulation:
    start: date
    end: date
    shift_months: int
    months: list[SimMonth] = field(default_factory=list)

    @property
    def total_current(self) -> Decimal:
        return sum((m.current or ZERO for m in self.months), ZERO)

    @property
    def total_deal(self) -> Decimal:
        return sum((m.deal for m in self.months), ZERO)

    @property
    def total_usage(self) -> Decimal:
        return sum((m.usage for m in self.months), ZERO)

    @property
    def total_difference(self) -> Decimal:
        """Σ (deal − current) over the months both price."""
        return sum((m.difference for m in self.months if m.difference is not None), ZERO)


def _shifted(line: DealLine, months: int) -> tuple[date, date, list[Step]]:
    start, end = add_months(line.start, -months), add_months(line_end(line), -months)
    ramp = [(add_months(d, -months), q) for d, q in ramp_steps(line)]
    return start, end, ramped(start, end, Decimal(line.quantity), ramp)


def _list_price(deal: Deal, product: Product, day: date) -> EffectivePrice | None:
    card = rate_card_at(deal.rate_card_key, day)
    price = Price.objects.filter(rate_card=card, product=product).first() if card else None
    return effective_price(price, custom_unit_price=None, discount_percent=ZERO)


def usage_months(*, deal: Deal, as_of: datetime) -> int:
    """The default window's length: the complete months before ``as_of`` back to the org's
    first month with usage (``DEFAULT_MONTHS`` when it has none), at most ``MAX_MONTHS``."""
    end = as_of.astimezone(UTC).date().replace(day=1)
    first = HourlyRollup.objects.filter(org_id=deal.org_id, hour__lt=midnight(end)).aggregate(
        first=Min("hour")
    )["first"]
    if first is None:
        return DEFAULT_MONTHS
    month = first.date().replace(day=1)
    return max(1, min(MAX_MONTHS, (end.year - month.year) * 12 + end.month - month.month))


def simulate(
    *,
    deal: Deal,
    months: int | None = None,
    as_of: datetime,
    lines: list[DealLine] | None = None,
) -> Simulation:
    """The deal over the last ``months`` complete months of real usage (default: every month
    with usage, ``usage_months``)."""
    lines = list(deal.lines.select_related("product__meter")) if lines is None else lines
    months = usage_months(deal=deal, as_of=as_of) if months is None else months
    months = max(1, min(months, MAX_MONTHS))
    end = as_of.astimezone(UTC).date().replace(day=1)
    start = add_months(end, -months)
    deal_start = min(line.start for line in lines).replace(day=1)
    shift = (deal_start.year - start.year) * 12 + deal_start.month - start.month
    window = [add_months(start, i) for i in range(months)]
    if deal.amends_id:
        return _simulate_amendment(deal, lines, window, Simulation(start, end, shift))
    rounding = deal.issuer.rounding

    def money(amount: Decimal) -> Decimal:
        return round_amount(amount, deal.currency, rounding)

    by_product: dict[int, list[tuple[DealLine, date, date, list[Step]]]] = defaultdict(list)
    for line in lines:
        by_product[line.product_id].append((line, *_shifted(line, shift)))
    products = {line.product_id: line.product for line in lines}

    usage: dict[tuple[int, date], dict[datetime, Decimal]] = defaultdict(dict)
    for pk, product in products.items():
        hours = hourly_usage(
            org_id=deal.org_id, product=product, start=midnight(start), end=midnight(end)
        )
        for hour, quantity in hours.items():
            usage[(pk, hour.date().replace(day=1))][hour] = quantity

    result = Simulation(start, end, shift)
    for month in window:
        month_end = add_months(month, 1)
        totals: defaultdict[str, Decimal] = defaultdict(lambda: ZERO)
        amount = ZERO
        for pk, product in products.items():
            held = by_product[pk]
            steps = [s for *_, line_steps in held for s in line_steps]
            reservation = sum(
                (
                    q * h * line.unit_price
                    for line, _, _, line_steps in held
                    for q, h in unit_hours(line_steps, month, month_end)
                ),
                ZERO,
            )
            totals["reserved"] += sum((q * h for q, h in unit_hours(steps, month, month_end)), ZERO)
            list_price = _list_price(deal, product, month)
            burst_amount = on_demand = ZERO
            for hour, used in sorted(usage[(pk, month)].items()):
                day = hour.date()
                active = [line for line, s, e, _ in held if s <= day < e]
                totals["usage"] += used
                if not active:
                    on_demand += used
                    continue
                reserved = level(steps, day)
                totals["covered"] += min(used, reserved)
                if used > reserved:
                    totals["burst"] += used - reserved
                    totals["burst_hours"] += 1
                    price = active[0].burst_unit_price
                    if price is None:
                        if list_price is None:
                            raise RatingError(f"{product.key}: burst has no price")
                        price = list_price.reference_unit_price
                    burst_amount += (used - reserved) * price
            totals["on_demand"] += on_demand
            amount += money(reservation) + money(burst_amount)
            if on_demand:
                if list_price is None:
                    raise RatingError(f"{product.key}: usage outside the deal has no list price")
                amount += sum(
                    (
                        p.amount
                        for p in price_quantity(
                            list_price, on_demand, currency=deal.currency, rounding=rounding
                        )
                    ),
                    ZERO,
                )
        current, basis, current_burst_hours = _current(deal, products, month, month_end)
        result.months.append(
            SimMonth(
                month=month,
                usage=totals["usage"],
                current=current,
                basis=basis,
                current_burst_hours=current_burst_hours,
                deal=amount,
                reserved=totals["reserved"],
                covered=totals["covered"],
                burst=totals["burst"],
                burst_hours=int(totals["burst_hours"]),
                on_demand=totals["on_demand"],
            )
        )
    return result


def _current(
    deal: Deal, products: dict[int, Product], month: date, month_end: date
) -> tuple[Decimal | None, str, int]:
    """The month's charges for the deal's products on the contract in force at its start."""
    contract = (
        Contract.objects.filter(org_id=deal.org_id, start__lte=month)
        .filter(Q(end__isnull=True) | Q(end__gt=month))
        .order_by("-start")
        .first()
    )
    if contract is None:
        amount = ZERO
        for product in products.values():
            used = sum(
                hourly_usage(
                    org_id=deal.org_id,
                    product=product,
                    start=midnight(month),
                    end=midnight(month_end),
                ).values(),
                ZERO,
            )
            price = _list_price(deal, product, month)
            if used and price is None:
                return None, f"{product.key} has no list price", 0
            if used and price is not None:
                priced = price_quantity(
                    price, used, currency=deal.currency, rounding=deal.issuer.rounding
                )
                amount += sum((p.amount for p in priced), ZERO)
        return amount, "list price", 0
    period_end = month_end if contract.end is None else min(month_end, contract.end)
    period = BillingPeriod(
        org_id=deal.org_id,
        contract=contract,
        start=midnight(month),
        end=midnight(period_end),
        currency=contract.currency,
    )
    try:
        rating = compute_period(period=period, as_of=midnight(period_end))
    except RatingError as exc:
        return None, str(exc), 0
    if contract.currency != deal.currency:
        return None, f"{contract.key} is in {contract.currency}", 0
    amount = sum(
        (line.amount for line in rating.lines if line.product and line.product.pk in products),
        ZERO,
    )
    burst_hours = sum(
        1
        for n in rating.netting
        if n.reservation.product_id in products
        for _, reserved, used in n.hours
        if Decimal(str(used)) > Decimal(str(reserved))
    )
    basis = contract.key if period_end == month_end else f"{contract.key} (to {period_end})"
    return amount, basis, burst_hours


class _Rollback(Exception):
    pass


def _clip(day: date, first: date, last: date | None) -> date:
    day = max(day, first)
    return min(day, last) if last else day


def _apply_shifted(deal: Deal, contract: Contract, lines: list[DealLine], shift: int) -> None:
    """The deal's lines and terms written onto ``contract`` as an amendment, every date moved
    ``shift`` months back and clipped to the contract's term. Callers roll it back."""
    amendment = Amendment.objects.create(
        org_id=deal.org_id,
        contract=contract,
        effective=contract.start,
        signed_at=timezone.now(),
        summary=f"simulation of deal {deal.pk}",
    )
    first, last = contract.start, contract.end
    for line, start, end, steps in ((line, *_shifted(line, shift)) for line in lines):
        start, end = _clip(start, first, last), _clip(end, first, last)
        if start >= end:
            continue
        reservation = Reservation.objects.create(
            org_id=deal.org_id,
            contract=contract,
            amendment=amendment,
            product=line.product,
            quantity=level(steps, start),
            unit_price=line.unit_price,
            burst_unit_price=line.burst_unit_price,
            start=start,
            end=end,
        )
        ReservationRamp.objects.bulk_create(
            ReservationRamp(
                org_id=deal.org_id,
                reservation=reservation,
                starts=step.start,
                quantity=step.quantity,
            )
            for step in steps
            if start < step.start < end
        )
    for term in DealTerm.objects.filter(org_id=deal.org_id, deal=deal):
        valid_from = _clip(add_months(term.valid_from, -shift), first, last)
        until = term.valid_until and _clip(add_months(term.valid_until, -shift), first, last)
        if until is not None and until <= valid_from or last is not None and valid_from >= last:
            continue
        ContractPrice.objects.create(
            org_id=deal.org_id,
            contract=contract,
            amendment=amendment,
            product=term.product,
            discount_percent=term.discount_percent or ZERO,
            unit_price=term.unit_price,
            valid_from=valid_from,
            valid_until=until,
        )


@dataclass(frozen=True)
class _Rated:
    amount: Decimal | None
    basis: str
    usage: Decimal = ZERO
    reserved: Decimal = ZERO
    covered: Decimal = ZERO
    burst: Decimal = ZERO
    burst_hours: int = 0


def _rate_month(contract: Contract, products: dict[int, Product], month: date) -> _Rated:
    """The contract's whole charge for a calendar month (its part of it), and the netting of
    the deal's products."""
    month_end = add_months(month, 1)
    first = max(month, contract.start)
    last = min(month_end, contract.end) if contract.end else month_end
    if first >= last:
        return _Rated(None, f"{contract.key} not in force")
    period = BillingPeriod(
        org_id=contract.org_id,
        contract=contract,
        start=midnight(first),
        end=midnight(last),
        currency=contract.currency,
    )
    try:
        rating = compute_period(period=period, as_of=period.end)
    except RatingError as exc:
        return _Rated(None, str(exc))
    keys = {p.key for p in products.values()}
    netting = [n for n in rating.netting if n.reservation.product_id in products]
    stack: defaultdict[tuple[int, int], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for n in netting:
        for offset, reserved, used in n.hours:
            entry = stack[(n.reservation.product_id, int(offset))]
            entry[0] += Decimal(str(reserved))
            entry[1] += Decimal(str(used))
    basis = (
        contract.key
        if (first, last) == (month, month_end)
        else f"{contract.key} ({first} to {last})"
    )
    return _Rated(
        amount=rating.subtotal,
        basis=basis,
        usage=sum((Decimal(v) for k, v in rating.usage.items() if k in keys), ZERO),
        reserved=sum((n.reserved for n in netting), ZERO),
        covered=sum((n.covered for n in netting), ZERO),
        burst=sum((n.burst for n in netting), ZERO),
        burst_hours=sum(1 for r, u in stack.values() if u > r),
    )


def _simulate_amendment(
    deal: Deal, lines: list[DealLine], window: list[date], result: Simulation
) -> Simulation:
    """ "Current contract" and "current contract + this amendment", month by month."""
    contract = deal.amends
    assert contract is not None
    products = {line.product_id: line.product for line in lines}
    before: dict[date, _Rated] = {}
    after: dict[date, _Rated] = {}
    try:
        with transaction.atomic():
            if deal.amendment_id:  # signed: "current" is the contract without it
                Reservation.objects.filter(amendment_id=deal.amendment_id).delete()
                ContractPrice.objects.filter(amendment_id=deal.amendment_id).delete()
            before = {month: _rate_month(contract, products, month) for month in window}
            _apply_shifted(deal, contract, lines, result.shift_months)
            after = {month: _rate_month(contract, products, month) for month in window}
            raise _Rollback
    except _Rollback:
        pass
    for month in window:
        now, then = before[month], after[month]
        result.months.append(
            SimMonth(
                month=month,
                usage=then.usage,
                current=now.amount,
                basis=now.basis,
                current_burst_hours=now.burst_hours,
                deal=then.amount if then.amount is not None else ZERO,
                reserved=then.reserved,
                covered=then.covered,
                burst=then.burst,
                burst_hours=then.burst_hours,
                on_demand=then.usage - then.covered - then.burst,
            )
        )
    return result
