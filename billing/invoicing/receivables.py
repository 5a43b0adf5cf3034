"""Receivables (SPEC §5): each issued invoice is open, overdue after its due date, or paid —
from Stripe, or marked paid by finance with a reference (a bank transfer). Payments are
rows (``InvoicePayment``), never edits of the invoice; several make a partial payment.

Outstanding = total − credit notes − payments. The aged view buckets what is outstanding by
days past due: current (not yet due), 1–30, 31–60, 61–90, 90+, per currency.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from audit.services import audit_record
from tenancy.models import Org

from ..money import round_amount
from .errors import InvoicingError
from .lock_objects import lock_invoice
from .models import CreditNote, Invoice, InvoicePayment

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
Status = Invoice.Status
COLLECTIBLE = (Status.FINALIZED, Status.OVERDUE, Status.UNCOLLECTIBLE)
BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
Method = InvoicePayment.Method
VOID_PAYMENT = "paid on a void invoice: refund or reallocate it"


def invoice_paid_amount(*, invoice: Invoice) -> Decimal:
    return InvoicePayment.objects.filter(invoice=invoice).aggregate(t=Sum("amount"))["t"] or ZERO


def invoice_outstanding(*, invoice: Invoice) -> Decimal:
    """What the customer still owes: total − credit notes − payments (never below 0)."""
    credited = CreditNote.objects.filter(invoice=invoice).aggregate(t=Sum("total"))["t"] or ZERO
    return max(ZERO, invoice.total - credited - invoice_paid_amount(invoice=invoice))


def invoice_payment_record(
    *,
    invoice_id: int,
    amount: Decimal | str | None,
    paid_on: date,
    reference: str,
    method: str = Method.BANK_TRANSFER,
    stripe_event_id: str = "",
    settle: bool = True,
    user: Any = None,
    actor: str = "finance",
) -> InvoicePayment:
    """Record money received against an issued invoice (``amount`` None: what is
    outstanding). When the payments cover what is outstanding the invoice becomes ``paid``;
    less is a partial payment (the invoice stays open or overdue). A payment on a void invoice
    is kept, flagged for finance (``attention``), logged as an error and audited: the money
    must be refunded or reallocated. Audited as ``invoice.payment_recorded``. ``settle``
    False: record only (the Stripe webhook moves the status itself). Money Stripe reports
    beyond what is outstanding is recorded and flagged, never refused (it was received).

    Raises ``InvoicingError``: ``reference_required``, ``invalid_amount``,
    ``amount_precision``, ``invoice_draft``, ``invoice_status`` (already paid),
    ``overpayment`` (more than is outstanding)."""
    if not reference.strip():
        raise InvoicingError("reference_required", "Give the payment's reference (bank or Stripe).")
    if method not in Method.values:
        raise InvoicingError("invalid_method", f"{method!r}: one of {', '.join(Method.values)}.")
    with transaction.atomic():
        invoice = lock_invoice(invoice_id=invoice_id)
        if invoice.is_draft:
            raise InvoicingError("invoice_draft", "A draft is not an invoice yet: nothing to pay.")
        outstanding = invoice_outstanding(invoice=invoice)
        value = _amount(amount, invoice, outstanding)
        attention = VOID_PAYMENT if invoice.status == Status.VOID else ""
        if not attention and method == Method.STRIPE and value > outstanding:
            attention = f"{value - outstanding} more than was outstanding: refund it"
        if not attention:
            if invoice.status == Status.PAID or outstanding == 0:
                raise InvoicingError("invoice_status", f"Invoice {invoice.number} is already paid.")
            if value > outstanding:
                raise InvoicingError(
                    "overpayment",
                    f"{value} is more than the {outstanding} {invoice.currency} outstanding on "
                    f"{invoice.number}.",
                )
        payment = InvoicePayment.objects.create(
            org_id=invoice.org_id,
            invoice=invoice,
            amount=value,
            currency=invoice.currency,
            paid_on=paid_on,
            method=method,
            reference=reference.strip()[:200],
            stripe_event_id=stripe_event_id,
            attention=attention,
            recorded_by=(user.get_username() if getattr(user, "is_authenticated", False)
                         else actor)[:150],
        )  # fmt: skip
        org = Org.objects.get(pk=invoice.org_id)
        audit_record(
            action="invoice.payment_recorded",
            object_type="invoice",
            object_key=invoice.number,
            changes={
                "amount": value,
                "paid_on": paid_on,
                "method": method,
                "reference": payment.reference,
                "outstanding_after": max(ZERO, outstanding - value),
                **({"attention": attention} if attention else {}),
            },
            user=user,
            actor=actor,
            org=org,
        )
        if attention:
            logger.error(
                "Payment of %s %s received on void invoice %s (%s): finance must refund it",
                value, invoice.currency, invoice.number, payment.reference,
            )  # fmt: skip
        elif settle and value == outstanding:
            from .status import invoice_status_advance

            invoice_status_advance(
                invoice_id=invoice.pk,
                status=Status.PAID,
                reason=f"{Method(method).label} {payment.reference}",
                at=timezone.now(),
                user=user,
                actor=actor,
            )
            invoice.status = Status.PAID
    from .events import invoice_event_emit

    if invoice.status == Status.PAID and not attention:
        invoice_event_emit(invoice=invoice, event="invoice.paid")
    return payment


def _amount(raw: Decimal | str | None, invoice: Invoice, outstanding: Decimal) -> Decimal:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if outstanding == 0:
            raise InvoicingError("invalid_amount", "Nothing is outstanding: give the amount.")
        return outstanding
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise InvoicingError("invalid_amount", f"{raw!r} is not an amount.") from None
    if not value.is_finite() or value <= 0:
        raise InvoicingError("invalid_amount", f"{raw!r}: give an amount above zero.")
    if round_amount(value, invoice.currency) != value:
        raise InvoicingError(
            "amount_precision", f"{value} has more decimals than {invoice.currency} allows."
        )
    return value


def invoices_mark_overdue(*, as_of: datetime | None = None) -> list[int]:
    """Move every open invoice whose due date has passed (due_date < the UTC date of
    ``as_of``) to ``overdue``; each move is audited and ``invoice.overdue`` is emitted once.
    Idempotent (the beat job runs it hourly). Returns the ids moved."""
    from .status import invoice_status_advance

    today = (as_of or timezone.now()).date()
    moved = []
    for invoice_id in Invoice.objects.filter(
        status=Status.FINALIZED, due_date__lt=today
    ).values_list("pk", flat=True):
        invoice, changed = invoice_status_advance(
            invoice_id=invoice_id,
            status=Status.OVERDUE,
            reason=f"Not paid by its due date (as of {today.isoformat()}).",
            actor="receivables",
        )
        if changed:
            from .events import invoice_event_emit

            invoice_event_emit(invoice=invoice, event="invoice.overdue")
            moved.append(invoice_id)
    return moved


@dataclass
class AgedRow:
    currency: str
    buckets: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(BUCKETS, ZERO))
    count: int = 0

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)

    @property
    def bucket_list(self) -> list[tuple[str, Decimal]]:
        return [(name, self.buckets[name]) for name in BUCKETS]


def bucket_of(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "90+"


def receivables_open(*, orgs: QuerySet[Org]) -> QuerySet[Invoice]:
    """Issued invoices of ``orgs`` that may still be collected, oldest due first."""
    return (
        Invoice.objects.filter(org__in=orgs, status__in=COLLECTIBLE)
        .select_related("org")
        .order_by("due_date", "pk")
    )


def receivables_aged(*, orgs: QuerySet[Org], as_of: date | None = None) -> list[AgedRow]:
    """Outstanding amounts per currency and age bucket (days past due at ``as_of``)."""
    today = as_of or timezone.now().date()
    rows: dict[str, AgedRow] = {}
    invoices = list(receivables_open(orgs=orgs))
    paid = _sums(InvoicePayment.objects.filter(invoice__in=invoices), "amount")
    credited = _sums(CreditNote.objects.filter(invoice__in=invoices), "total")
    for invoice in invoices:
        outstanding = invoice.total - paid.get(invoice.pk, ZERO) - credited.get(invoice.pk, ZERO)
        if outstanding <= 0:
            continue
        assert invoice.due_date is not None
        row = rows.setdefault(invoice.currency, AgedRow(invoice.currency))
        row.buckets[bucket_of((today - invoice.due_date).days)] += outstanding
        row.count += 1
    return [rows[c] for c in sorted(rows)]


def _sums(query: QuerySet[Any], column: str) -> dict[int, Decimal]:
    rows = query.values("invoice_id").annotate(t=Sum(column)).order_by()
    return {row["invoice_id"]: row["t"] for row in rows}


def payments_needing_attention() -> QuerySet[InvoicePayment]:
    return InvoicePayment.objects.exclude(attention="").select_related("invoice", "org")


def payments_of(*, invoice_ids: Iterable[int]) -> dict[int, Decimal]:
    return _sums(InvoicePayment.objects.filter(invoice_id__in=list(invoice_ids)), "amount")
