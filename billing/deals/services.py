"""Deal writes. Every edit and transition appends a ``DealEvent`` in the same transaction.

A deal for an org without a running contract becomes a contract through the catalog's own
``contracts`` section (``contract``), so it passes exactly the checks of a reviewed catalog
file. A deal that names the org's running contract (``amends``) is signed as an amendment of
it (``billing.services.contract_amend``, SPEC §3 "Amendments"): its lines become reservations
from their dates, its terms discounts or custom prices from theirs.

Drafts are checked when they are saved, and again when they are submitted and signed, in the
account manager's words (``terms.terms_errors``): product names and dates, not catalog paths.
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
from ..rating.terms import days_text
from ..rating.triggers import schedule_rating
from ..services import AmendmentError, PriceTerm, ReservationTerm, contract_amend
from . import access
from .capacity import deal_fit
from .contract import contract_entry, contract_errors
from .economics import EconomicsError, deal_economics, line_end, ramp_steps
from .errors import DealError
from .lock_objects import lock_deal
from .models import Deal, DealEvent, DealLine, DealTerm
from .terms import (
    LineInput,
    TermInput,
    co_termed,
    dated_words,
    inputs_of,
    number_text,
    price_text,
    terms_errors,
    terms_snapshot,
)

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
    """Raises ``DealError`` (validation_error) naming everything ``terms_errors`` finds."""
    errors = terms_errors(
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
    _record(deal, actor, Action.CREATED, "", changes=terms_snapshot(deal, written, written_terms))
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
    before = terms_snapshot(
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
    after = terms_snapshot(deal, written, written_terms)
    changes = {k: [before.get(k), after[k]] for k in after if before.get(k) != after[k]}
    if changes or from_status != deal.status:
        _record(deal, actor, Action.EDITED, from_status, changes=changes)
    return deal


def approval_threshold() -> Decimal:
    return Decimal(str(settings.TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT))


def _still_valid(deal: Deal, lines: list[DealLine], terms: list[DealTerm]) -> None:
    """Checks again what may have changed since the draft was saved (an invoice, another
    contract), then, for a new contract, what the catalog would refuse."""
    line_inputs, term_inputs = inputs_of(lines, terms)
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
        reasons.append("on-demand terms: " + "; ".join(dated_words(t) for t in terms))
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
    if access.wrote_terms(actor, deal):
        raise DealError(
            "four_eyes",
            "You created, edited or submitted this deal's terms, so you cannot "
            f"{'approve' if approve else 'reject'} it: another finance user decides (four eyes).",
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
    parts += [dated_words(t) for t in terms]
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
        schedule_rating()  # the amended periods are rated again after this commits
    except AmendmentError as exc:
        raise DealError("amendment_refused", str(exc), fields={"amends": [str(exc)]}) from None


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
