"""The invoice status graph (SPEC §3) and the moves along it after finalization.

``TRANSITIONS`` is the one statement of which moves are allowed: the services check it, and
the database trigger that guards ``billing_invoice`` is generated from it
(``status_moves_sql``, used by the immutability migrations), so the two cannot drift.
A finalized invoice's status only moves forward; paid and void are terminal.
"""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from tenancy.models import Org

from ..stripe.tasks import invoices_sync_on_commit
from .errors import InvoicingError
from .lock_objects import lock_invoice
from .models import Invoice

Status = Invoice.Status

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.DRAFT: frozenset({Status.FINALIZED}),
    Status.FINALIZED: frozenset({Status.PAID, Status.VOID, Status.UNCOLLECTIBLE}),
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
    """Void a finalized (or uncollectible) invoice; ``reason`` is required. Raises
    ``InvoicingError`` (``reason_required``, ``invoice_draft``, ``invoice_status``)."""
    return _finance_move(invoice_id=invoice_id, status=Status.VOID, reason=reason, user=user)


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
