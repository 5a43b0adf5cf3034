"""Credit notes: the only correction of a finalized invoice (SPEC §3; EU invoicing law).

A credit note is numbered from its issuer's credit-note counter, credits whole lines or parts
of them, and is taxed with the invoice's rates through the same step 8 as the invoice
(``totals.document_totals``).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from audit.services import audit_record
from tenancy.models import Org

from ..models import Issuer
from ..money import round_amount
from .errors import InvoicingError
from .events import credit_note_issued_emit
from .lock_objects import lock_invoice
from .models import (
    CreditNote,
    CreditNoteLine,
    CreditNoteTax,
    DocumentCounter,
    Invoice,
    InvoiceLine,
    InvoiceTax,
)
from .numbering import format_number, next_number
from .tax import TaxRule
from .totals import TaxLine, Totals, document_totals

ZERO = Decimal(0)
Status = Invoice.Status


@dataclass(frozen=True)
class CreditRequest:
    """Credit part of one invoice line: ``amount`` (currency), or ``quantity`` (billing
    units, priced at the line's unit price), or neither (what is left of the line)."""

    line_id: int
    amount: Decimal | None = None
    quantity: Decimal | None = None


def credit_note_issue(
    *,
    invoice_id: int,
    reason: str,
    lines: Iterable[CreditRequest] | None = None,
    as_of: datetime | None = None,
    user: Any = None,
) -> CreditNote:
    """Issue a numbered credit note against a finalized invoice: ``lines`` None credits the
    whole invoice (lines, credits and tax); otherwise the given lines, each at most what is
    left of it, taxed at the invoice's rate. Raises ``InvoicingError``."""
    as_of = (as_of or timezone.now()).astimezone(UTC)
    if not reason.strip():
        raise InvoicingError("reason_required", "Give the reason for the credit note.")
    with transaction.atomic():
        invoice = lock_invoice(invoice_id=invoice_id)
        if invoice.status in (Status.DRAFT, Status.VOID):
            raise InvoicingError(
                "invoice_status", f"A {invoice.status} invoice cannot be credited."
            )
        invoice_lines = {line.pk: line for line in InvoiceLine.objects.filter(invoice=invoice)}
        credited = _credited_per_line(invoice)
        taxes = list(InvoiceTax.objects.filter(invoice=invoice))
        issuer = Issuer.objects.get(pk=invoice.issuer_id)
        note_lines, full = _credit_lines(invoice, invoice_lines, credited, lines)
        subtotal = sum((amount for _, _, amount in note_lines), ZERO)
        if full:
            # The whole invoice: its credits and its tax lines exactly as invoiced.
            totals = Totals(
                subtotal=subtotal,
                credits=invoice.credits,
                taxes=tuple(
                    TaxLine(rate=t.rate, basis=t.basis, amount=t.amount, reason=t.reason,
                            mention=t.mention)
                    for t in taxes
                ),
            )  # fmt: skip
        else:
            totals = document_totals(
                subtotal=subtotal,
                credits=ZERO,
                rules=[TaxRule(rate=t.rate, reason=t.reason, mention=t.mention) for t in taxes],
                currency=invoice.currency,
                rounding=issuer.rounding,
            )
        total = totals.total
        already = CreditNote.objects.filter(invoice=invoice).aggregate(t=Sum("total"))["t"] or ZERO
        if total <= 0 or already + total > invoice.total:
            raise InvoicingError(
                "credit_exceeds_invoice",
                f"Credit notes would total {already + total}, above the invoice's {invoice.total}.",
            )
        year = as_of.date().year
        sequence = next_number(issuer=issuer, year=year, kind=DocumentCounter.Kind.CREDIT_NOTE)
        note = CreditNote.objects.create(
            org_id=invoice.org_id,
            invoice=invoice,
            issuer=issuer,
            number=format_number(
                issuer=issuer, year=year, sequence=sequence, kind=DocumentCounter.Kind.CREDIT_NOTE
            ),
            number_year=year,
            sequence=sequence,
            currency=invoice.currency,
            issue_date=as_of.date(),
            reason=reason,
            full=full,
            subtotal=subtotal,
            credits=totals.credits,
            tax_total=totals.tax_total,
            total=total,
        )
        CreditNoteLine.objects.bulk_create(
            CreditNoteLine(
                org_id=invoice.org_id,
                credit_note=note,
                invoice_line=line,
                position=position,
                kind=line.kind,
                product=line.product,
                description=line.description,
                quantity=quantity,
                unit=line.unit,
                unit_price=line.unit_price,
                amount=amount,
            )
            for position, (line, quantity, amount) in enumerate(note_lines)
        )
        CreditNoteTax.objects.bulk_create(
            CreditNoteTax(
                org_id=invoice.org_id,
                credit_note=note,
                rate=tax.rate,
                basis=tax.basis,
                amount=tax.amount,
                reason=tax.reason,
                mention=tax.mention,
            )
            for tax in totals.taxes
        )
        org = Org.objects.get(pk=invoice.org_id)
        audit_record(
            action="credit_note.issued",
            object_type="credit_note",
            object_key=note.number,
            changes={"invoice": invoice.number, "total": total, "full": full, "reason": reason},
            user=user,
            actor="finance",
            org=org,
        )
        credit_note_issued_emit(note=note, invoice=invoice, org_slug=org.slug)
    return note


def _credited_per_line(invoice: Invoice) -> dict[int, Decimal]:
    rows = (
        CreditNoteLine.objects.filter(org_id=invoice.org_id, credit_note__invoice=invoice)
        .values("invoice_line_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {row["invoice_line_id"]: row["total"] for row in rows}


def _credit_lines(
    invoice: Invoice,
    invoice_lines: dict[int, InvoiceLine],
    credited: dict[int, Decimal],
    requests: Iterable[CreditRequest] | None,
) -> tuple[list[tuple[InvoiceLine, Decimal, Decimal]], bool]:
    if requests is None:
        if credited:
            raise InvoicingError(
                "already_credited",
                "This invoice is already partly credited: credit its remaining lines instead.",
            )
        ordered = sorted(invoice_lines.values(), key=lambda line: line.position)
        return [(line, line.quantity, line.amount) for line in ordered if line.amount], True
    result = []
    seen: set[int] = set()
    for request in requests:
        line = invoice_lines.get(request.line_id)
        if line is None or request.line_id in seen:
            raise InvoicingError(
                "unknown_line", f"Line {request.line_id} is not a line of {invoice.number}."
            )
        seen.add(request.line_id)
        left = line.amount - credited.get(line.pk, ZERO)
        if request.amount is not None:
            amount = request.amount
            quantity = (amount / line.unit_price) if line.unit_price else ZERO
        elif request.quantity is not None:
            quantity = request.quantity
            amount = round_amount(quantity * line.unit_price, invoice.currency,
                                  invoice.issuer.rounding)  # fmt: skip
        else:
            amount = left
            quantity = line.quantity * left / line.amount if line.amount else ZERO
        if amount <= 0 or amount > left:
            raise InvoicingError(
                "credit_exceeds_line",
                f"Line {line.pk} has {left} left to credit; {amount} was asked.",
            )
        if round_amount(amount, invoice.currency) != amount:
            raise InvoicingError("amount_precision", f"{amount} has more than minor units.")
        result.append((line, quantity.quantize(Decimal("1e-12")), amount))
    if not result:
        raise InvoicingError("no_lines", "Name at least one line to credit.")
    return result, False
