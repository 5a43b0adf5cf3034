"""Deal writes. Every edit and transition appends a ``DealEvent`` in the same transaction.

A signed deal becomes a contract through the catalog's own ``contracts`` section
(``load_catalog``), so a deal's contract passes exactly the checks of a reviewed catalog file.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from tenancy.models import Org

from ..catalog import CatalogError, load_catalog
from ..models import Contract, Issuer, Product, RateCard
from . import access
from .capacity import deal_fit, pool_of
from .economics import EconomicsError, deal_economics, line_end
from .errors import DealError
from .lock_objects import lock_deal
from .models import Deal, DealEvent, DealLine
from .schedule import add_months

Status = Deal.Status
Action = DealEvent.Action


def _forbidden(message: str) -> DealError:
    return DealError("permission_denied", message)


def _state(deal: Deal, action: str) -> DealError:
    return DealError(
        "invalid_transition",
        f"A deal that is {deal.get_status_display().lower()} cannot be {action}.",
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


def _snapshot(deal: Deal, lines: list[DealLine]) -> dict[str, Any]:
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
                "unit_price": _text(line.unit_price),
                "burst_unit_price": _text(line.burst_unit_price),
                "ramp": [
                    {"from": str(s["from"]), "quantity": int(s["quantity"])} for s in line.ramp
                ],
            }
            for line in lines
        ],
    }


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


def _validate(
    *, org: Org, currency: str, rate_card_key: str, lines: list[LineInput]
) -> dict[str, list[str]]:
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
        )
        for i, line in enumerate(lines)
    )


def _check_economics(deal: Deal, lines: list[DealLine]) -> None:
    try:
        deal_economics(deal=deal, lines=lines)
    except EconomicsError as exc:
        raise DealError("validation_error", str(exc), fields={"lines": [str(exc)]}) from None


@transaction.atomic
def deal_create(
    *,
    actor: Any,
    org: Org,
    currency: str,
    rate_card_key: str,
    issuer: Issuer,
    lines: list[LineInput],
    title: str = "",
) -> Deal:
    """A new draft for one of the actor's orgs."""
    if not access.draftable_orgs(actor).filter(pk=org.pk).exists():
        raise _forbidden(f"You may not draft deals for org {org.slug!r}.")
    errors = _validate(org=org, currency=currency, rate_card_key=rate_card_key, lines=lines)
    if errors:
        raise DealError("validation_error", "The deal is not valid.", fields=errors)
    deal = Deal.objects.create(
        org=org,
        title=title,
        currency=currency,
        rate_card_key=rate_card_key,
        issuer=issuer,
        created_by=actor,
    )
    written = _lines_write(deal, lines)
    _check_economics(deal, written)
    _record(deal, actor, Action.CREATED, "", changes=_snapshot(deal, written))
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
    title: str = "",
) -> Deal:
    """Replace a draft's terms (a rejected deal goes back to draft); records what changed."""
    deal = lock_deal(deal_id=deal_id)
    if not access.manages(actor, deal):
        raise _forbidden("Only the org's account manager may edit its deals.")
    if deal.status not in access.EDITABLE:
        raise _state(deal, "edited")
    errors = _validate(org=deal.org, currency=currency, rate_card_key=rate_card_key, lines=lines)
    if errors:
        raise DealError("validation_error", "The deal is not valid.", fields=errors)
    before = _snapshot(deal, list(deal.lines.select_related("product")))
    from_status = deal.status
    deal.title, deal.currency, deal.rate_card_key, deal.issuer = (
        title,
        currency,
        rate_card_key,
        issuer,
    )
    deal.status = Status.DRAFT
    deal.approval_reasons = []
    deal.save()
    written = _lines_write(deal, lines)
    _check_economics(deal, written)
    after = _snapshot(deal, written)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changes or from_status != deal.status:
        _record(deal, actor, Action.EDITED, from_status, changes=changes)
    return deal


def approval_threshold() -> Decimal:
    return Decimal(str(settings.TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT))


class _DryRun(Exception):
    pass


def contract_entry(deal: Deal, lines: list[DealLine]) -> dict[str, Any]:
    """The deal as an entry of the catalog's ``contracts`` section (SPEC §5 shape)."""
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
    }


def contract_errors(deal: Deal, lines: list[DealLine]) -> list[str]:
    """What the catalog would refuse in the deal's contract; nothing is written."""
    try:
        with transaction.atomic():
            load_catalog({"contracts": [contract_entry(deal, lines)]})
            raise _DryRun
    except CatalogError as exc:
        return exc.errors
    except _DryRun:
        return []


@transaction.atomic
def deal_submit(*, actor: Any, deal_id: int) -> Deal:
    """Send a draft for approval. It needs finance when its discount exceeds the threshold
    or capacity is short in any month; otherwise it is approved at once (the trail says why).
    A deal whose contract the catalog would refuse is not submitted."""
    deal = lock_deal(deal_id=deal_id)
    if not access.manages(actor, deal):
        raise _forbidden("Only the org's account manager may submit its deals.")
    if deal.status not in access.EDITABLE:
        raise _state(deal, "submitted")
    lines = list(deal.lines.select_related("product"))
    errors = contract_errors(deal, lines)
    if errors:
        raise DealError(
            "contract_invalid",
            "The contract this deal would create is not valid: " + "; ".join(errors),
            fields={"contract": errors},
        )
    economics = deal_economics(deal=deal, lines=lines)
    fit = deal_fit(deal=deal, lines=lines)
    threshold = approval_threshold()
    reasons = []
    if economics.discount_percent > threshold:
        reasons.append(f"discount {economics.discount_percent}% exceeds {threshold}%")
    reasons += [str(s) for s in fit.shortfalls]
    reasons += [f"{key}: no capacity pool" for key in fit.unmapped]
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


def _decide(actor: Any, deal_id: int, approve: bool, comment: str) -> Deal:
    deal = lock_deal(deal_id=deal_id)
    if not access.access_finance(actor):
        raise _forbidden("Only finance may approve or reject deals.")
    if deal.status != Status.PENDING_APPROVAL:
        raise _state(deal, "approved" if approve else "rejected")
    if deal.created_by_id == actor.pk:
        raise _forbidden("A deal is approved by someone other than who drafted it.")
    from_status = deal.status
    deal.status = Status.APPROVED if approve else Status.REJECTED
    deal.save(update_fields=["status", "updated_at"])
    _record(
        deal, actor, Action.APPROVED if approve else Action.REJECTED, from_status, comment=comment
    )
    return deal


@transaction.atomic
def deal_approve(*, actor: Any, deal_id: int, comment: str = "") -> Deal:
    return _decide(actor, deal_id, True, comment.strip())


@transaction.atomic
def deal_reject(*, actor: Any, deal_id: int, comment: str) -> Deal:
    """Finance sends a deal back; the comment (required) says why."""
    if not comment.strip():
        raise DealError(
            "validation_error", "Say why the deal is rejected.", fields={"comment": ["required"]}
        )
    return _decide(actor, deal_id, False, comment.strip())


@transaction.atomic
def deal_sign(*, actor: Any, deal_id: int) -> Deal:
    """Turn an approved deal into its contract and reservations, effective on its start.

    Idempotent: signing a signed deal returns it unchanged. The deal's row lock serializes
    signers, and the one-to-one ``Deal.contract`` column allows one contract per deal.
    """
    deal = lock_deal(deal_id=deal_id)
    if not (access.manages(actor, deal) or access.access_finance(actor)):
        raise _forbidden("Only the org's account manager or finance may sign its deals.")
    if deal.status == Status.SIGNED:
        return deal
    if deal.status != Status.APPROVED:
        raise _state(deal, "signed")
    lines = list(deal.lines.select_related("product"))
    try:
        load_catalog({"contracts": [contract_entry(deal, lines)]})
    except CatalogError as exc:
        raise DealError(
            "contract_invalid",
            "The contract this deal would create is not valid: " + "; ".join(exc.errors),
            fields={"contract": exc.errors},
        ) from None
    deal.contract = Contract.objects.get(org=deal.org, key=deal.contract_key)
    from_status = deal.status
    deal.status = Status.SIGNED
    deal.save(update_fields=["contract", "status", "updated_at"])
    _record(deal, actor, Action.SIGNED, from_status, changes={"contract": deal.contract.key})
    return deal
