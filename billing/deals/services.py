"""Deal writes. Every edit and transition appends a ``DealEvent`` in the same transaction.

A signed deal becomes a contract through the catalog's own ``contracts`` section
(``contract``), so a deal's contract passes exactly the checks of a reviewed catalog file.
The terms' shape and validation are in ``terms``.
"""

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from tenancy.models import Org

from ..catalog import CatalogError, load_catalog
from ..models import Contract, Issuer
from . import access
from .capacity import deal_fit
from .contract import contract_entry, contract_errors
from .economics import EconomicsError, deal_economics
from .errors import DealError
from .lock_objects import lock_deal
from .models import Deal, DealEvent, DealLine
from .terms import LineInput, number_text, terms_errors, terms_snapshot

Status = Deal.Status
Action = DealEvent.Action


def _forbidden(message: str) -> DealError:
    return DealError("permission_denied", message)


def _state(deal: Deal, action: str) -> DealError:
    return DealError(
        "invalid_transition",
        f"A deal that is {deal.get_status_display().lower()} cannot be {action}.",
    )


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
    errors = terms_errors(org=org, currency=currency, rate_card_key=rate_card_key, lines=lines)
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
    _record(deal, actor, Action.CREATED, "", changes=terms_snapshot(deal, written))
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
    errors = terms_errors(org=deal.org, currency=currency, rate_card_key=rate_card_key, lines=lines)
    if errors:
        raise DealError("validation_error", "The deal is not valid.", fields=errors)
    before = terms_snapshot(deal, list(deal.lines.select_related("product")))
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
    after = terms_snapshot(deal, written)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changes or from_status != deal.status:
        _record(deal, actor, Action.EDITED, from_status, changes=changes)
    return deal


def approval_threshold() -> Decimal:
    return Decimal(str(settings.TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT))


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
            "total_contract_value": number_text(economics.total_contract_value),
            "list_value": number_text(economics.list_value),
            "discount_percent": number_text(economics.discount_percent),
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
