"""What a deal is worth (SPEC §3 "Deal"), in Decimal.

Hours are exact hours between UTC midnights: a line from 2027-01-01 for 3 months holds
31 + 28 + 31 = 90 days = 2,160 hours. Value = Σ quantity(t) × hours × price over each ramp
step. Amounts are rounded once each (the total, each month) to the currency's minor unit by
the issuer's rounding mode; the monthly amounts may differ from the total by rounding.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from core.errors import DomainError, ErrorCode, ErrorKind

from ..models import Price, RateCard, Reservation
from ..money import round_amount
from ..rating.pricing import effective_price
from .models import Deal, DealLine
from .schedule import Step, add_months, months_between, ramped, unit_hours

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class EconomicsError(DomainError):
    """The deal cannot be valued as drafted; the message names the line and what is missing."""

    codes = {
        "deal_not_valued": ErrorCode(ErrorKind.INVALID, "The deal cannot be valued as drafted.")
    }

    def __init__(self, message: str) -> None:
        super().__init__("deal_not_valued", message)


def line_end(line: DealLine) -> date:
    """Exclusive: ``term_months`` after the start, or the amended contract's end (co-termed)."""
    return line.line_end


def ramp_steps(line: DealLine) -> list[tuple[date, Decimal]]:
    return [(date.fromisoformat(str(s["from"])), Decimal(s["quantity"])) for s in line.ramp]


def line_schedule(line: DealLine) -> list[Step]:
    return ramped(line.start, line_end(line), Decimal(line.quantity), ramp_steps(line))


def deal_term(lines: Iterable[DealLine]) -> tuple[date, date]:
    lines = list(lines)
    return min(line.start for line in lines), max(line_end(line) for line in lines)


def rate_card_at(key: str, day: date) -> RateCard | None:
    return (
        RateCard.objects.filter(key=key, effective_from__lte=day)
        .order_by("-effective_from")
        .first()
    )


def list_unit_price(deal: Deal, line: DealLine) -> Decimal:
    """The rate card's on-demand price of one billing unit of the line's product, by the
    version in force on the line's start (tiered and package prices: their first unit's)."""
    card = rate_card_at(deal.rate_card_key, line.start)
    if card is None:
        raise EconomicsError(
            f"line {line.position + 1}: rate card {deal.rate_card_key!r} has no version in "
            f"force on {line.start}"
        )
    price = Price.objects.filter(rate_card=card, product_id=line.product_id).first()
    effective = effective_price(price, custom_unit_price=None, discount_percent=ZERO)
    if effective is None:
        raise EconomicsError(
            f"line {line.position + 1}: {line.product} has no price on rate card {card}"
        )
    return effective.reference_unit_price


@dataclass(frozen=True)
class MonthValue:
    month: date
    gpu_hours: Decimal
    amount: Decimal
    # An amendment: what the contract it amends already commits in the month (reservations).
    current: Decimal = ZERO

    @property
    def with_deal(self) -> Decimal:
        return self.current + self.amount


@dataclass(frozen=True)
class LineValue:
    line: DealLine
    end: date
    gpu_hours: Decimal
    value: Decimal  # unrounded
    list_unit_price: Decimal
    list_value: Decimal  # unrounded


@dataclass(frozen=True)
class Economics:
    currency: str
    start: date
    end: date
    lines: list[LineValue]
    total_contract_value: Decimal
    list_value: Decimal
    discount_percent: Decimal  # 2 places; 0 when the list value is 0
    monthly: list[MonthValue]
    amends: str = ""  # the amended contract's key; "" for a new contract

    @property
    def current_value(self) -> Decimal:
        """What the amended contract already commits over the deal's months."""
        return sum((m.current for m in self.monthly), ZERO)

    @property
    def value_with_deal(self) -> Decimal:
        return self.current_value + self.total_contract_value


def _value(steps: list[Step], price: Decimal, first: date, last: date) -> tuple[Decimal, Decimal]:
    gpu_hours = value = ZERO
    for quantity, hours in unit_hours(steps, first, last):
        gpu_hours += quantity * hours
        value += quantity * hours * price
    return gpu_hours, value


def deal_economics(*, deal: Deal, lines: list[DealLine] | None = None) -> Economics:
    lines = list(deal.lines.select_related("product")) if lines is None else lines
    if not lines:
        raise EconomicsError("the deal has no lines")
    start, end = deal_term(lines)
    rounding = deal.issuer.rounding

    def money(amount: Decimal) -> Decimal:
        return round_amount(amount, deal.currency, rounding)

    values = []
    for line in lines:
        steps = line_schedule(line)
        gpu_hours, value = _value(steps, line.unit_price, line.start, line_end(line))
        list_price = list_unit_price(deal, line)
        values.append(
            LineValue(line, line_end(line), gpu_hours, value, list_price, gpu_hours * list_price)
        )
    tcv = money(sum((v.value for v in values), ZERO))
    list_value = money(sum((v.list_value for v in values), ZERO))
    discount = (
        ((list_value - tcv) / list_value * HUNDRED).quantize(Decimal("0.01"))
        if list_value
        else ZERO
    )
    held = _contract_schedules(deal)
    monthly = []
    for month in months_between(start, end):
        month_end = add_months(month, 1)
        gpu_hours = amount = ZERO
        for line in lines:
            h, v = _value(line_schedule(line), line.unit_price, month, month_end)
            gpu_hours += h
            amount += v
        current = sum((_value(steps, price, month, month_end)[1] for steps, price in held), ZERO)
        monthly.append(MonthValue(month, gpu_hours, money(amount), money(current)))
    amends = deal.amends.key if deal.amends_id and deal.amends else ""
    return Economics(deal.currency, start, end, values, tcv, list_value, discount, monthly, amends)


def _contract_schedules(deal: Deal) -> list[tuple[list[Step], Decimal]]:
    """The reservations of the contract a deal amends (not its own, once signed), each as
    its schedule and price: what "current contract" commits."""
    if not deal.amends_id:
        return []
    reservations = Reservation.objects.filter(
        org_id=deal.org_id, contract_id=deal.amends_id
    ).prefetch_related("ramps")
    if deal.amendment_id:
        reservations = reservations.exclude(amendment_id=deal.amendment_id)
    return [
        (
            ramped(r.start, r.end, r.quantity, [(x.starts, x.quantity) for x in r.ramps.all()]),
            r.unit_price,
        )
        for r in reservations
    ]
