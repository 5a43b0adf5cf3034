"""The invoice status graph (SPEC §3) and the moves along it after finalization.

``TRANSITIONS`` is the one statement of which moves are allowed: the services check it, and
the database trigger that guards ``billing_invoice`` is generated from it
(``status_moves_sql``, used by the immutability migrations), so the two cannot drift.
A finalized invoice's status only moves forward; paid and void are terminal.
"""

from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from tenancy.models import Org

from ..lock_objects import lock_period
from ..models import BillingPeriod
from ..rating.credits import credits_give_back
from ..stripe.tasks import invoices_sync_on_commit
from .errors import InvoicingError
from .lock_objects import lock_invoice
from .models import Invoice

Status = Invoice.Status
PeriodStatus = BillingPeriod.Status

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.DRAFT: frozenset({Status.FINALIZED}),
    Status.FINALIZED: frozenset({Status.OVERDUE, Status.PAID, Status.VOID, Status.UNCOLLECTIBLE}),
    Status.OVERDUE: frozenset({Status.PAID, Status.VOID, Status.UNCOLLECTIBLE}),
    Status.UNCOLLECTIBLE: frozenset({Status.PAID, Status.VOID}),
    Status.PAID: frozenset(),
    Status.VOID: frozenset(),
}


def can_move(old: str, new: str) -> bool:
    """Whether an invoice may go from status ``old`` to ``new`` (staying put is allowed)."""
    return old == new or new in TRANSITIONS[old]


def status_moves_sql(old: str = "OLD.status", new: str = "NEW.status") -> str:
    """``can_move`` as a SQL boolean over the column expressions ``old`` and ``new`` (the
    same text works in PostgreSQL and SQLite triggers)."""

    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    moves = [f"{new} = {old}"]
    for source, targets in TRANSITIONS.items():
        if targets:
            listed = ", ".join(literal(t) for t in sorted(targets))
            moves.append(f"({old} = {literal(source)} AND {new} IN ({listed}))")
    return " OR ".join(moves)


def invoice_status_advance(
    *,
    invoice_id: int,
    status: str,
    reason: str = "",
    at: datetime | None = None,
    user: Any = None,
    actor: str = "system",
) -> tuple[Invoice, bool]:
    """Move a finalized invoice's status forward (paid / void / uncollectible). A move that
    is not forward (e.g. paid after void) changes nothing. Returns (invoice, changed)."""
    with transaction.atomic():
        invoice = lock_invoice(invoice_id=invoice_id)
        if invoice.status == status or not can_move(invoice.status, status):
            return invoice, False
        if invoice.is_draft:
            return invoice, False
        invoice.status = status
        invoice.status_reason = reason
        invoice.status_changed_at = at or timezone.now()
        invoice.save(update_fields=["status", "status_reason", "status_changed_at"])
        audit_record(
            action=f"invoice.{status}",
            object_type="invoice",
            object_key=invoice.number,
            changes={"status": status, "reason": reason},
            user=user,
            actor=actor,
            org=Org.objects.get(pk=invoice.org_id),
        )
    return invoice, True


def invoice_void(*, invoice_id: int, reason: str, user: Any = None) -> Invoice:
    """Void a finalized, overdue or uncollectible invoice; ``reason`` is required (SPEC §3).

    In the same transaction: the credits the invoice's period drew go back to their grants
    (a negative ``CreditDraw`` per grant: ledger entries, nothing edited), a balance it carried
    to the org is taken back (refused once a later invoice has used it: credit it instead),
    and the period is reopened (``closing``) so the next close run, or ``invoice_reissue``,
    drafts it again; that draft names this invoice in ``replaces`` and gets a new number.
    Raises ``InvoicingError`` (``reason_required``, ``invoice_draft``, ``invoice_status``,
    ``balance_used``)."""
    if not reason.strip():
        raise InvoicingError("reason_required", "Give a reason to void an invoice.")
    with transaction.atomic():
        period = lock_period(period_id=Invoice.objects.get(pk=invoice_id).period_id)
        invoice = _finance_move(invoice_id=invoice_id, status=Status.VOID, reason=reason, user=user)
        if invoice.status == Status.VOID and period.status == PeriodStatus.INVOICED:
            given_back = credits_give_back(period=period, invoice=invoice)
            period.status = PeriodStatus.CLOSING
            period.save(update_fields=["status"])
            audit_record(
                action="period.reopened",
                object_type="billing_period",
                object_key=f"{period.pk}",
                changes={"voided": invoice.number, "credits_given_back": given_back},
                user=user,
                actor="finance",
                org=Org.objects.get(pk=invoice.org_id),
            )
    return invoice


def invoice_reissue(
    *, invoice_id: int, reason: str, as_of: datetime | None = None, user: Any = None
) -> Invoice:
    """Void ``invoice_id`` (``invoice_void``, if not void yet) and draft its period again at
    once: the period is re-rated (so it draws its credits again) and drafted; the draft's
    ``replaces`` is the void invoice, and it gets the next number when finalized. Returns the
    new draft. Raises ``InvoicingError`` (those of ``invoice_void``, ``reissue_failed`` with
    the reason the period cannot be drafted yet)."""
    from ..services import period_rate
    from .drafting import grace, invoice_draft

    invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.status != Status.VOID:
        invoice = invoice_void(invoice_id=invoice_id, reason=reason, user=user)
    now = (as_of or timezone.now()).astimezone(UTC)
    period = BillingPeriod.objects.get(pk=invoice.period_id)
    with transaction.atomic():
        period_rate(period_id=period.pk, as_of=max(now, period.end))
        draft, why = invoice_draft(period_id=period.pk, as_of=max(now, period.end + grace()))
        if draft is None:
            raise InvoicingError(
                "reissue_failed", f"Period {period.start:%Y-%m-%d} cannot be drafted: {why}."
            )
        audit_record(
            action="invoice.reissued",
            object_type="invoice",
            object_key=invoice.number,
            changes={"replacement_draft": draft.pk, "reason": reason},
            user=user,
            actor="finance",
            org=Org.objects.get(pk=invoice.org_id),
        )
    return draft


def invoice_mark_uncollectible(*, invoice_id: int, reason: str, user: Any = None) -> Invoice:
    """Mark a finalized invoice uncollectible; errors as ``invoice_void``."""
    return _finance_move(
        invoice_id=invoice_id, status=Status.UNCOLLECTIBLE, reason=reason, user=user
    )


def _finance_move(*, invoice_id: int, status: str, reason: str, user: Any = None) -> Invoice:
    if not reason.strip():
        raise InvoicingError("reason_required", f"Give a reason to mark an invoice {status}.")
    invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.is_draft:
        raise InvoicingError(
            "invoice_draft", "A draft is not an invoice yet: finalize it or leave it."
        )
    invoice, changed = invoice_status_advance(
        invoice_id=invoice_id, status=status, reason=reason, user=user, actor="finance"
    )
    if not changed and invoice.status != status:
        raise InvoicingError(
            "invoice_status",
            f"Invoice {invoice.number} is {invoice.status}; it cannot be {status}.",
        )
    if changed:
        invoices_sync_on_commit(invoice_ids=[invoice_id])
    return invoice
