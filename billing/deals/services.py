"""Deal writes. Every edit and transition appends a ``DealEvent`` in the same transaction.

A deal for an org without a running contract becomes a contract through the catalog's own
``contracts`` section (``load_catalog``), so it passes exactly the checks of a reviewed
catalog file. A deal that names the org's running contract (``amends``) is signed as an
amendment of it (``billing.services.contract_amend``, SPEC §3 "Amendments"): its lines become
reservations from their dates, its terms discounts or custom prices from theirs.

Drafts are checked when they are saved, and again when they are submitted and signed, in the
account manager's words: product names and dates, not catalog paths.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tenancy.models import Org

from ..catalog import CatalogError, load_catalog
from ..models import Contract, Issuer, Product, RateCard
from ..rating.terms import days_text
from ..services import AmendmentError, PriceTerm, ReservationTerm, billed_through, contract_amend
from . import access
from .capacity import deal_fit, pool_of
from .economics import EconomicsError, deal_economics, line_end, ramp_steps
from .models import Deal, DealEvent, DealLine, DealTerm
from .schedule import FAR_FUTURE, add_months

Status = Deal.Status
Action = DealEvent.Action


class DealError(Exception):
    """A refused deal operation: ``code`` is stable, ``fields`` names what is wrong."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 400,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields or {}


def _forbidden(message: str) -> DealError:
    return DealError("permission_denied", message, status=403)


def _state(deal: Deal, action: str) -> DealError:
    return DealError(
        "invalid_transition",
        f"A deal that is {deal.get_status_display().lower()} cannot be {action}.",
        status=409,
    )


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


def lock_deal(*, deal_id: int) -> Deal:
    """The deal's row, locked: transitions of one deal run one at a time."""
    return Deal.objects.select_for_update().select_related("org", "issuer").get(pk=deal_id)


def _snapshot(deal: Deal, lines: list[DealLine], terms: list[DealTerm]) -> dict[str, Any]:
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
                "unit_price": _text(line.unit_price),
                "burst_unit_price": _text(line.burst_unit_price),
                "ramp": [
                    {"from": str(s["from"]), "quantity": int(s["quantity"])} for s in line.ramp
                ],
            }
            for line in lines
        ],
        "terms": [
            {
                "product": term.product.key if term.product else None,
                "discount_percent": _text(term.discount_percent),
                "unit_price": _text(term.unit_price),
                "from": term.valid_from.isoformat(),
                "until": term.valid_until.isoformat() if term.valid_until else None,
            }
            for term in terms
        ],
    }


def price_text(number: Decimal) -> str:
    """A price as people write it: 2 → 2.00, 2.8 → 2.80, 0.0125 → 0.0125."""
    whole, _, fraction = f"{number.normalize():f}".partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _text(number: Decimal | None) -> str | None:
    return None if number is None else f"{number.normalize():f}"


def _record(
    deal: Deal,
    actor: Any,
    action: str,
    from_status: str,
    *,
    changes: dict[str, Any] | None = None,
    comment: str = "",
) -> DealEvent:
    from audit.services import audit_record

    audit_record(
        action=f"deal.{action}",
        object_type="deal",
        object_key=str(deal.pk),
        changes={"from": from_status, "to": deal.status, **(changes or {}), "comment": comment},
        user=actor,
        org=deal.org,
    )
    return DealEvent.objects.create(
        org_id=deal.org_id,
        deal=deal,
        actor=actor,
        at=timezone.now(),
        action=action,
        from_status=from_status,
        to_status=deal.status,
        changes=changes or {},
        comment=comment,
    )


def _last_day(end: date) -> date:
    return end - timedelta(days=1)


def contract_span(contract: Contract) -> str:
    """A contract's term as people read it: "2026-09-01 to 2027-08-31" or "from 2026-09-01,
    no end date"."""
    if contract.end is None:
        return f"from {contract.start}, no end date"
    return f"{contract.start} to {_last_day(contract.end)}"


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


def _validate(
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
                    f"({line.start} to {_last_day(end)}).",
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
                f"{key} is invoiced through {_last_day(through)}: an amendment cannot change "
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


def co_termed(line: LineInput, amends: Contract | None) -> date | None:
    """The amended contract's end, when the line's term would run past it."""
    end = add_months(line.start, line.term_months)
    return amends.end if amends and amends.end and amends.end < end else None


def _lines_write(deal: Deal, lines: list[LineInput]) -> list[DealLine]:
    deal.lines.all().delete()
    return DealLine.objects.bulk_create(
        DealLine(
            org_id=deal.org_id,
            deal=deal,
            position=i,
            product=line.product,
            quantity=line.quantity,
            start=line.start,
            term_months=line.term_months,
            unit_price=line.unit_price,
            burst_unit_price=line.burst_unit_price,
            ramp=[{"from": s["from"].isoformat(), "quantity": s["quantity"]} for s in line.ramp],
            end=co_termed(line, deal.amends),
        )
        for i, line in enumerate(lines)
    )


def _terms_write(deal: Deal, terms: list[TermInput]) -> list[DealTerm]:
    deal.terms.all().delete()
    return DealTerm.objects.bulk_create(
        DealTerm(
            org_id=deal.org_id,
            deal=deal,
            position=i,
            product=term.product,
            discount_percent=term.discount_percent,
            unit_price=term.unit_price,
            valid_from=term.valid_from,
            valid_until=term.valid_until,
        )
        for i, term in enumerate(terms)
    )


def _check_economics(deal: Deal, lines: list[DealLine]) -> None:
    try:
        deal_economics(deal=deal, lines=lines)
    except EconomicsError as exc:
        raise DealError("validation_error", str(exc), fields={"lines": [str(exc)]}) from None


def _ensure_valid(
    org: Org,
    currency: str,
    rate_card_key: str,
    lines: list[LineInput],
    terms: list[TermInput],
    amends: Contract | None,
) -> None:
    """Raises ``DealError`` (validation_error) naming everything ``_validate`` finds."""
    errors = _validate(
        org=org,
        currency=currency,
        rate_card_key=rate_card_key,
        lines=lines,
        terms=terms,
        amends=amends,
    )
    if errors:
        raise DealError(
            "validation_error",
            "The deal is not valid: " + " ".join(m for ms in errors.values() for m in ms),
            fields=errors,
        )


@transaction.atomic
def deal_create(
    *,
    actor: Any,
    org: Org,
    currency: str,
    rate_card_key: str,
    issuer: Issuer,
    lines: list[LineInput],
    terms: list[TermInput] | None = None,
    amends: Contract | None = None,
    title: str = "",
) -> Deal:
    """A new draft for one of the actor's orgs; ``amends``: the org's running contract."""
    if not access.draftable_orgs(actor).filter(pk=org.pk).exists():
        raise _forbidden(f"You may not draft deals for org {org.slug!r}.")
    terms = terms or []
    _ensure_valid(org, currency, rate_card_key, lines, terms, amends)
    deal = Deal.objects.create(
        org=org,
        title=title,
        currency=currency,
        rate_card_key=rate_card_key,
        issuer=issuer,
        amends=amends,
        created_by=actor,
    )
    written = _lines_write(deal, lines)
    written_terms = _terms_write(deal, terms)
    _check_economics(deal, written)
    _record(deal, actor, Action.CREATED, "", changes=_snapshot(deal, written, written_terms))
    return deal


@transaction.atomic
def deal_update(
    *,
    actor: Any,
    deal_id: int,
    currency: str,
    rate_card_key: str,
    issuer: Issuer,
    lines: list[LineInput],
    terms: list[TermInput] | None = None,
    amends: Contract | None = None,
    title: str = "",
) -> Deal:
    """Replace a draft's terms (a rejected deal goes back to draft); records what changed."""
    deal = lock_deal(deal_id=deal_id)
    if not access.manages(actor, deal):
        raise _forbidden("Only the org's account manager may edit its deals.")
    if deal.status not in access.EDITABLE:
        raise _state(deal, "edited")
    terms = terms or []
    _ensure_valid(deal.org, currency, rate_card_key, lines, terms, amends)
    before = _snapshot(
        deal, list(deal.lines.select_related("product")), list(deal.terms.select_related("product"))
    )
    from_status = deal.status
    deal.title, deal.currency, deal.rate_card_key, deal.issuer, deal.amends = (
        title,
        currency,
        rate_card_key,
        issuer,
        amends,
    )
    deal.status = Status.DRAFT
    deal.approval_reasons = []
    deal.save()
    written = _lines_write(deal, lines)
    written_terms = _terms_write(deal, terms)
    _check_economics(deal, written)
    after = _snapshot(deal, written, written_terms)
    changes = {k: [before.get(k), after[k]] for k in after if before.get(k) != after[k]}
    if changes or from_status != deal.status:
        _record(deal, actor, Action.EDITED, from_status, changes=changes)
    return deal


def approval_threshold() -> Decimal:
    return Decimal(str(settings.TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT))


class _DryRun(Exception):
    pass


def contract_entry(deal: Deal, lines: list[DealLine], terms: list[DealTerm]) -> dict[str, Any]:
    """The deal as an entry of the catalog's ``contracts`` section (SPEC §5 shape)."""
    discounts = [t for t in terms if t.unit_price is None]
    prices = [t for t in terms if t.unit_price is not None]

    def dated(term: DealTerm) -> dict[str, str]:
        return {
            "from": term.valid_from.isoformat(),
            **({"until": term.valid_until.isoformat()} if term.valid_until else {}),
        }

    return {
        "key": deal.contract_key,
        "org": deal.org.slug,
        "issuer": deal.issuer.key,
        "rate_card": deal.rate_card_key,
        "currency": deal.currency,
        "start": min(line.start for line in lines).isoformat(),
        "end": max(line_end(line) for line in lines).isoformat(),
        "reservations": [
            {
                "product": line.product.key,
                "quantity": line.quantity,
                "unit_price": _text(line.unit_price),
                "start": line.start.isoformat(),
                "end": line_end(line).isoformat(),
                **(
                    {"burst_unit_price": _text(line.burst_unit_price)}
                    if line.burst_unit_price is not None
                    else {}
                ),
                "ramp": [{"from": s["from"], "quantity": s["quantity"]} for s in line.ramp],
            }
            for line in lines
        ],
        "discounts": [
            {
                **({"product": t.product.key} if t.product else {}),
                "percent": _text(t.discount_percent),
                **dated(t),
            }
            for t in discounts
        ],
        "prices": [
            {"product": t.product.key, "unit_price": _text(t.unit_price), **dated(t)}
            for t in prices
            if t.product is not None
        ],
    }


def contract_errors(deal: Deal, lines: list[DealLine], terms: list[DealTerm]) -> list[str]:
    """What the catalog would refuse in the deal's new contract; nothing is written."""
    try:
        with transaction.atomic():
            load_catalog({"contracts": [contract_entry(deal, lines, terms)]})
            raise _DryRun
    except CatalogError as exc:
        return exc.errors
    except _DryRun:
        return []


def _inputs(
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


def _still_valid(deal: Deal, lines: list[DealLine], terms: list[DealTerm]) -> None:
    """Checks again what may have changed since the draft was saved (an invoice, another
    contract), then, for a new contract, what the catalog would refuse."""
    line_inputs, term_inputs = _inputs(lines, terms)
    _ensure_valid(
        deal.org, deal.currency, deal.rate_card_key, line_inputs, term_inputs, deal.amends
    )
    if deal.amends_id is None:
        catalog = contract_errors(deal, lines, terms)
        if catalog:
            raise DealError(
                "contract_invalid",
                "The contract this deal would create is not valid: " + "; ".join(catalog),
                fields={"contract": catalog},
            )


@transaction.atomic
def deal_submit(*, actor: Any, deal_id: int) -> Deal:
    """Send a draft for approval. It needs finance when its discount exceeds the threshold
    or capacity is short in any month; otherwise it is approved at once (the trail says why).
    A deal the signature would refuse is not submitted."""
    deal = lock_deal(deal_id=deal_id)
    if not access.manages(actor, deal):
        raise _forbidden("Only the org's account manager may submit its deals.")
    if deal.status not in access.EDITABLE:
        raise _state(deal, "submitted")
    lines = list(deal.lines.select_related("product"))
    terms = list(deal.terms.select_related("product"))
    _still_valid(deal, lines, terms)
    economics = deal_economics(deal=deal, lines=lines)
    fit = deal_fit(deal=deal, lines=lines)
    threshold = approval_threshold()
    reasons = []
    if economics.discount_percent > threshold:
        reasons.append(f"discount {economics.discount_percent}% exceeds {threshold}%")
    reasons += [str(s) for s in fit.shortfalls]
    reasons += [f"{key}: no capacity pool" for key in fit.unmapped]
    if terms:
        reasons.append("on-demand terms: " + "; ".join(_dated_words(t) for t in terms))
    from_status = deal.status
    deal.approval_reasons = reasons
    if reasons:
        deal.status = Status.PENDING_APPROVAL
        comment = "Needs approval: " + "; ".join(reasons) + "."
    else:
        deal.status = Status.APPROVED
        comment = (
            f"Approved without review: discount {economics.discount_percent}% is within "
            f"{threshold}% and capacity fits every month."
        )
    deal.save(update_fields=["status", "approval_reasons", "updated_at"])
    _record(
        deal,
        actor,
        Action.SUBMITTED,
        from_status,
        changes={
            "total_contract_value": _text(economics.total_contract_value),
            "list_value": _text(economics.list_value),
            "discount_percent": _text(economics.discount_percent),
            "reasons": reasons,
        },
        comment=comment,
    )
    return deal


def _dated_words(term: DealTerm) -> str:
    what = (
        f"{term.discount_percent.normalize():f}% off"
        if term.discount_percent is not None
        else f"custom price {_text(term.unit_price)}"
    )
    product = term.product.name if term.product else "every product"
    until = f" until {_last_day(term.valid_until)}" if term.valid_until else ""
    return f"{what} {product} from {term.valid_from}{until}"


def _decide(actor: Any, deal_id: int, approve: bool, comment: str) -> Deal:
    deal = lock_deal(deal_id=deal_id)
    if not access.access_finance(actor):
        raise _forbidden("Only finance may approve or reject deals.")
    if deal.status != Status.PENDING_APPROVAL:
        raise _state(deal, "approved" if approve else "rejected")
    if access.wrote_terms(actor, deal):
        raise DealError(
            "four_eyes",
            "You created, edited or submitted this deal's terms, so you cannot "
            f"{'approve' if approve else 'reject'} it: another finance user decides (four eyes).",
            status=403,
        )
    from_status = deal.status
    deal.status = Status.APPROVED if approve else Status.REJECTED
    deal.save(update_fields=["status", "updated_at"])
    _record(
        deal, actor, Action.APPROVED if approve else Action.REJECTED, from_status, comment=comment
    )
    return deal


@transaction.atomic
def deal_approve(*, actor: Any, deal_id: int, comment: str = "") -> Deal:
    """Finance approves a pending deal; never one whose terms they created, edited or
    submitted (four eyes: ``access.wrote_terms``)."""
    return _decide(actor, deal_id, True, comment.strip())


@transaction.atomic
def deal_reject(*, actor: Any, deal_id: int, comment: str) -> Deal:
    """Finance sends a deal back; the comment (required) says why."""
    if not comment.strip():
        raise DealError(
            "validation_error", "Say why the deal is rejected.", fields={"comment": ["required"]}
        )
    return _decide(actor, deal_id, False, comment.strip())


def amendment_summary(lines: list[DealLine], terms: list[DealTerm]) -> str:
    """What an amendment adds, one clause per line and term."""
    parts = []
    for line in lines:
        ramp = "".join(f", {s['quantity']} from {s['from']}" for s in line.ramp)
        burst = f", burst {price_text(line.burst_unit_price)}" if line.burst_unit_price else ""
        parts.append(
            f"+{line.quantity} × {line.product.name} "
            f"{days_text([(line.start, line_end(line))])} at {price_text(line.unit_price)} per "
            "GPU-hour"
            f"{burst}{ramp}"
        )
    parts += [_dated_words(t) for t in terms]
    return "; ".join(parts)


def _amend(deal: Deal, actor: Any, lines: list[DealLine], terms: list[DealTerm]) -> None:
    assert deal.amends is not None
    try:
        deal.amendment = contract_amend(
            contract=deal.amends,
            reservations=[
                ReservationTerm(
                    product=line.product,
                    quantity=Decimal(line.quantity),
                    unit_price=line.unit_price,
                    burst_unit_price=line.burst_unit_price,
                    start=line.start,
                    end=line_end(line),
                    ramp=[(d, q) for d, q in ramp_steps(line)],
                )
                for line in lines
            ],
            prices=[
                PriceTerm(
                    product=t.product,
                    valid_from=t.valid_from,
                    valid_until=t.valid_until,
                    discount_percent=t.discount_percent or Decimal(0),
                    unit_price=t.unit_price,
                )
                for t in terms
            ],
            summary=f"Deal {deal.pk}: " + amendment_summary(lines, terms),
            signed_by=actor,
        )
    except AmendmentError as exc:
        raise DealError(
            "contract_invalid", str(exc), fields={"amends": [str(exc)]}, status=409
        ) from None


@transaction.atomic
def deal_sign(*, actor: Any, deal_id: int) -> Deal:
    """Turn an approved deal into its contract, or into an amendment of the contract it
    amends (its lines and terms appended from their dates, with who signed and when).

    Idempotent: signing a signed deal returns it unchanged. The deal's row lock serializes
    signers; the one-to-one ``Deal.contract`` and ``Deal.amendment`` columns allow one
    contract or amendment per deal.
    """
    deal = lock_deal(deal_id=deal_id)
    if not (access.manages(actor, deal) or access.access_finance(actor)):
        raise _forbidden("Only the org's account manager or finance may sign its deals.")
    if deal.status == Status.SIGNED:
        return deal
    if deal.status != Status.APPROVED:
        raise _state(deal, "signed")
    lines = list(deal.lines.select_related("product"))
    terms = list(deal.terms.select_related("product"))
    _still_valid(deal, lines, terms)
    from_status = deal.status
    if deal.amends is not None:
        _amend(deal, actor, lines, terms)
        assert deal.amendment is not None
        changes = {"amended": deal.amends.key, "amendment": deal.amendment.pk}
    else:
        try:
            load_catalog({"contracts": [contract_entry(deal, lines, terms)]})
        except CatalogError as exc:
            raise DealError(
                "contract_invalid",
                "The contract this deal would create is not valid: " + "; ".join(exc.errors),
                fields={"contract": exc.errors},
            ) from None
        deal.contract = Contract.objects.get(org=deal.org, key=deal.contract_key)
        changes = {"contract": deal.contract.key}
    deal.status = Status.SIGNED
    deal.save(update_fields=["contract", "amendment", "status", "updated_at"])
    _record(deal, actor, Action.SIGNED, from_status, changes=changes)
    return deal
