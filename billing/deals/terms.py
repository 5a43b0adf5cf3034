"""A deal's terms: the lines as a caller gives them, their validation (every field named),
and the snapshot the deal's trail records."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from tenancy.models import Org

from ..models import Product, RateCard
from .capacity import pool_of
from .models import Deal, DealLine
from .schedule import add_months


@dataclass(frozen=True)
class LineInput:
    product: Product
    quantity: int
    start: date
    term_months: int
    unit_price: Decimal
    burst_unit_price: Decimal | None = None
    ramp: list[dict[str, Any]] = field(default_factory=list)  # [{"from": date, "quantity": int}]


def terms_snapshot(deal: Deal, lines: list[DealLine]) -> dict[str, Any]:
    return {
        "org": deal.org.slug,
        "title": deal.title,
        "currency": deal.currency,
        "rate_card": deal.rate_card_key,
        "issuer": deal.issuer.key,
        "lines": [
            {
                "product": line.product.key,
                "quantity": line.quantity,
                "start": line.start.isoformat(),
                "term_months": line.term_months,
                "unit_price": number_text(line.unit_price),
                "burst_unit_price": number_text(line.burst_unit_price),
                "ramp": [
                    {"from": str(s["from"]), "quantity": int(s["quantity"])} for s in line.ramp
                ],
            }
            for line in lines
        ],
    }


def number_text(number: Decimal | None) -> str | None:
    return None if number is None else f"{number.normalize():f}"


def terms_errors(
    *, org: Org, currency: str, rate_card_key: str, lines: list[LineInput]
) -> dict[str, list[str]]:
    """What is wrong with the terms, by field (``lines.0.quantity``); empty if nothing."""
    errors: dict[str, list[str]] = {}

    def error(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    currencies = set(RateCard.objects.filter(key=rate_card_key).values_list("currency", flat=True))
    if not currencies:
        error("rate_card", f"no rate card {rate_card_key!r}")
    elif currency not in currencies:
        error("currency", f"rate card {rate_card_key!r} is in {', '.join(sorted(currencies))}")
    if not lines:
        error("lines", "a deal needs at least one line")
    for i, line in enumerate(lines):
        where = f"lines.{i}"
        if pool_of(line.product) is None:
            error(
                f"{where}.product",
                f"{line.product.key} names no GPU pool (its filter needs gpu_model and region)",
            )
        if line.quantity <= 0:
            error(f"{where}.quantity", "must be at least 1 GPU")
        if not 1 <= line.term_months <= 120:
            error(f"{where}.term_months", "must be between 1 and 120 months")
        if line.unit_price < 0:
            error(f"{where}.unit_price", "must not be negative")
        if line.burst_unit_price is not None and line.burst_unit_price < 0:
            error(f"{where}.burst_unit_price", "must not be negative")
        end = add_months(line.start, line.term_months)
        previous = line.start
        for step in line.ramp:
            starts, quantity = step.get("from"), step.get("quantity")
            if not isinstance(starts, date) or not isinstance(quantity, int) or quantity < 0:
                error(f"{where}.ramp", "each step needs a date and a whole number of GPUs ≥ 0")
            elif not line.start < starts < end:
                error(f"{where}.ramp", f"{starts} is outside the line's term ({line.start}, {end})")
            elif starts <= previous:
                error(f"{where}.ramp", f"{starts} must come after {previous}")
            else:
                previous = starts
    return errors
