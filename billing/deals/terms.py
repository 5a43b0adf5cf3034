"""A deal's terms: the lines (reserved GPUs) and on-demand terms as a caller gives them, their
validation in the account manager's words (product names, dates, the contract's key; every
field named), and the snapshot the deal's trail records."""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from tenancy.models import Org

from ..models import Contract, Product, RateCard
from ..services import billed_through
from .capacity import pool_of
from .models import Deal, DealLine, DealTerm
from .schedule import FAR_FUTURE, add_months


@dataclass(frozen=True)
class LineInput:
    product: Product
    quantity: int
    start: date
    term_months: int
    unit_price: Decimal
    burst_unit_price: Decimal | None = None
    ramp: list[dict[str, Any]] = field(default_factory=list)  # [{"from": date, "quantity": int}]


@dataclass(frozen=True)
class TermInput:
    """An on-demand term: ``discount_percent`` off list (``product`` None: every product) or a
    custom ``unit_price`` for ``product``, from ``valid_from`` until ``valid_until``."""

    product: Product | None
    valid_from: date
    discount_percent: Decimal | None = None
    unit_price: Decimal | None = None
    valid_until: date | None = None


def terms_snapshot(deal: Deal, lines: list[DealLine], terms: list[DealTerm]) -> dict[str, Any]:
    return {
        "org": deal.org.slug,
        "amends": deal.amends.key if deal.amends else None,
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
        "terms": [
            {
                "product": term.product.key if term.product else None,
                "discount_percent": number_text(term.discount_percent),
                "unit_price": number_text(term.unit_price),
                "from": term.valid_from.isoformat(),
                "until": term.valid_until.isoformat() if term.valid_until else None,
            }
            for term in terms
        ],
    }


def number_text(number: Decimal | None) -> str | None:
    return None if number is None else f"{number.normalize():f}"


def price_text(number: Decimal) -> str:
    """A price as people write it: 2 → 2.00, 2.8 → 2.80, 0.0125 → 0.0125."""
    whole, _, fraction = f"{number.normalize():f}".partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def co_termed(line: LineInput, amends: Contract | None) -> date | None:
    """The amended contract's end, when the line's term would run past it."""
    end = add_months(line.start, line.term_months)
    return amends.end if amends and amends.end and amends.end < end else None


def last_day(end: date) -> date:
    return end - timedelta(days=1)


def contract_span(contract: Contract) -> str:
    """A contract's term as people read it: "2026-09-01 to 2027-08-31" or "from 2026-09-01,
    no end date"."""
    if contract.end is None:
        return f"from {contract.start}, no end date"
    return f"{contract.start} to {last_day(contract.end)}"


def _term_words(term: TermInput) -> str:
    what = (
        f"{term.discount_percent.normalize():f}% off"
        if term.discount_percent is not None
        else f"custom price {term.unit_price}"
    )
    return f"{what} {term.product.name if term.product else 'every product'}"


class _Errors(dict[str, list[str]]):
    def add(self, name: str, message: str) -> None:
        self.setdefault(name, []).append(message)


def terms_errors(
    *,
    org: Org,
    currency: str,
    rate_card_key: str,
    lines: list[LineInput],
    terms: list[TermInput],
    amends: Contract | None,
) -> dict[str, list[str]]:
    """Everything the signature would refuse, said in the account manager's words: product
    names, dates, the contract's key (SPEC §3 "Deal", "Amendments")."""
    errors = _Errors()
    currencies = set(RateCard.objects.filter(key=rate_card_key).values_list("currency", flat=True))
    if not currencies:
        errors.add("rate_card", f"There is no rate card {rate_card_key}.")
    elif currency not in currencies:
        errors.add("rate_card", f"Rate card {rate_card_key} is in {', '.join(sorted(currencies))}.")
    elif currency != org.currency:
        errors.add(
            "rate_card",
            f"{org.name} is billed in {org.currency}; rate card {rate_card_key} is in {currency}.",
        )
    if not lines:
        errors.add("lines", "A deal needs at least one line of reserved GPUs.")
    starts: dict[tuple[int, date], int] = {}
    for i, line in enumerate(lines):
        where, name = f"lines.{i}", line.product.name
        if pool_of(line.product) is None:
            errors.add(
                f"{where}.product",
                f"{name} names no GPU pool (its filter needs gpu_model and region).",
            )
        if line.quantity <= 0:
            errors.add(f"{where}.quantity", f"{name}: reserve at least 1 GPU.")
        if not 1 <= line.term_months <= 120:
            errors.add(f"{where}.term_months", f"{name}: the term is 1 to 120 months.")
        if line.unit_price < 0:
            errors.add(f"{where}.unit_price", f"{name}: the price must not be negative.")
        if line.burst_unit_price is not None and line.burst_unit_price < 0:
            errors.add(
                f"{where}.burst_unit_price", f"{name}: the burst price must not be negative."
            )
        same = starts.setdefault((line.product.pk, line.start), i)
        if same != i:
            errors.add(
                f"{where}.start",
                f"{name} from {line.start} is already line {same + 1}: make them one line.",
            )
        end = co_termed(line, amends) or add_months(line.start, line.term_months)
        previous = line.start
        for step in line.ramp:
            day, quantity = step.get("from"), step.get("quantity")
            if not isinstance(day, date) or not isinstance(quantity, int) or quantity < 0:
                errors.add(
                    f"{where}.ramp", f"{name}: each ramp step needs a date and GPUs (0 or more)."
                )
            elif not line.start < day < end:
                errors.add(
                    f"{where}.ramp",
                    f"{name}: the ramp step on {day} is outside the line's term "
                    f"({line.start} to {last_day(end)}).",
                )
            elif day <= previous:
                errors.add(
                    f"{where}.ramp", f"{name}: the ramp step on {day} must come after {previous}."
                )
            else:
                previous = day
    _validate_terms(errors, terms)
    if amends is None:
        _validate_new_contract(errors, org, lines)
    else:
        _validate_amendment(errors, org, currency, rate_card_key, lines, terms, amends)
    return dict(errors)


def _validate_terms(errors: _Errors, terms: list[TermInput]) -> None:
    for i, term in enumerate(terms):
        where = f"terms.{i}"
        if (term.discount_percent is None) == (term.unit_price is None):
            errors.add(where, "Give either a discount in percent or a custom price, not both.")
            continue
        words = _term_words(term)
        if term.unit_price is not None and term.product is None:
            errors.add(f"{where}.product", "A custom price is for one product: choose it.")
        if term.unit_price is not None and term.unit_price < 0:
            errors.add(f"{where}.unit_price", f"{words}: the price must not be negative.")
        if term.discount_percent is not None and not 0 <= term.discount_percent <= 100:
            errors.add(f"{where}.discount_percent", f"{words}: a discount is 0 to 100 %.")
        if term.valid_until is not None and term.valid_until <= term.valid_from:
            errors.add(
                f"{where}.valid_until",
                f"{words}: it must end after it starts ({term.valid_from}).",
            )
            continue
        for j, other in enumerate(terms[:i]):
            if (
                other.product == term.product
                and (other.unit_price is None) == (term.unit_price is None)
                and term.valid_from < (other.valid_until or FAR_FUTURE)
                and other.valid_from < (term.valid_until or FAR_FUTURE)
            ):
                errors.add(
                    f"{where}.valid_from",
                    f"{words} overlaps term {j + 1} ({_term_words(other)} from "
                    f"{other.valid_from}): one term of a kind per product at a time.",
                )


def _validate_new_contract(errors: _Errors, org: Org, lines: list[LineInput]) -> None:
    """A new contract may not overlap a contract the org already has: the deal amends it."""
    if not lines:
        return
    first = min(line.start for line in lines)
    last = max(add_months(line.start, line.term_months) for line in lines)
    for other in Contract.objects.filter(org=org).order_by("start"):
        if other.start < last and first < (other.end or FAR_FUTURE):
            after = f", or start on or after {other.end}" if other.end else ""
            errors.add(
                "amends",
                f"{org.name} already has contract {other.key} ({contract_span(other)}) over "
                f"these dates: choose it under “Amends” to add these lines to it{after}.",
            )


def _validate_amendment(
    errors: _Errors,
    org: Org,
    currency: str,
    rate_card_key: str,
    lines: list[LineInput],
    terms: list[TermInput],
    contract: Contract,
) -> None:
    """An amendment stays inside its contract and after its last invoiced day."""
    key = contract.key
    if contract.org_id != org.pk:
        errors.add("amends", f"{key} is not a contract of {org.name}.")
        return
    if contract.rate_card_key != rate_card_key or contract.currency != currency:
        errors.add(
            "rate_card",
            f"{key} is priced on rate card {contract.rate_card_key} ({contract.currency}); "
            "an amendment keeps its contract's rate card.",
        )
    through = billed_through(contract=contract)
    end = contract.end or FAR_FUTURE

    def too_early(day: date) -> str | None:
        if day < contract.start:
            return f"{key} begins on {contract.start}"
        if through and day < through:
            return (
                f"{key} is invoiced through {last_day(through)}: an amendment cannot change "
                f"billed days; start on or after {through}"
            )
        return None

    for i, line in enumerate(lines):
        name = line.product.name
        early = too_early(line.start)
        if early:
            errors.add(f"lines.{i}.start", f"{name} from {line.start}: {early}.")
        elif line.start >= end:
            errors.add(f"lines.{i}.start", f"{name} from {line.start}: {key} ends before that.")
    for i, term in enumerate(terms):
        words = _term_words(term)
        early = too_early(term.valid_from)
        if early:
            errors.add(f"terms.{i}.valid_from", f"{words} from {term.valid_from}: {early}.")
        elif term.valid_until is not None and term.valid_until > end:
            errors.add(
                f"terms.{i}.valid_until",
                f"{words} runs past the end of {key} ({contract_span(contract)}): end it by "
                f"{contract.end}.",
            )


def inputs_of(
    lines: list[DealLine], terms: list[DealTerm]
) -> tuple[list[LineInput], list[TermInput]]:
    return (
        [
            LineInput(
                product=line.product,
                quantity=line.quantity,
                start=line.start,
                term_months=line.term_months,
                unit_price=line.unit_price,
                burst_unit_price=line.burst_unit_price,
                ramp=[
                    {"from": date.fromisoformat(str(s["from"])), "quantity": int(s["quantity"])}
                    for s in line.ramp
                ],
            )
            for line in lines
        ],
        [
            TermInput(
                product=t.product,
                valid_from=t.valid_from,
                discount_percent=t.discount_percent,
                unit_price=t.unit_price,
                valid_until=t.valid_until,
            )
            for t in terms
        ],
    )


def dated_words(term: DealTerm) -> str:
    what = (
        f"{term.discount_percent.normalize():f}% off"
        if term.discount_percent is not None
        else f"custom price {number_text(term.unit_price)}"
    )
    product = term.product.name if term.product else "every product"
    until = f" until {last_day(term.valid_until)}" if term.valid_until else ""
    return f"{what} {product} from {term.valid_from}{until}"
