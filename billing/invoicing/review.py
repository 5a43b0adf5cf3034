"""Draft review before numbering (SPEC §6, issue 15): discard a draft, re-rate it after a
fix, add a one-off line, and compare it with the previous period.

A draft is not a legal document yet: it may be deleted or rebuilt. Every change is audited.
One-off lines survive a re-rate (they are finance's, not the rating's).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from audit.services import audit_record
from tenancy.models import Org

from ..lock_objects import lock_period
from ..models import BillingPeriod, CreditDraw, Product
from ..money import round_amount
from .drafting import apply_totals, grace, invoice_draft, invoice_totals
from .errors import InvoicingError
from .lock_objects import lock_invoice
from .models import Invoice, InvoiceLine, InvoiceTax, LineKind

ZERO = Decimal(0)
Status = Invoice.Status


def _locked_draft(invoice_id: int) -> tuple[Invoice, BillingPeriod]:
    """Lock the draft's period, then the draft (the lock order of drafting)."""
    period_id = Invoice.objects.filter(pk=invoice_id).values_list("period_id", flat=True).first()
    if period_id is None:
        raise Invoice.DoesNotExist(f"No invoice {invoice_id}.")
    period = lock_period(period_id=period_id)
    invoice = lock_invoice(invoice_id=invoice_id)
    if not invoice.is_draft:
        raise InvoicingError(
            "invoice_status",
            f"Invoice {invoice.number} is {invoice.status}: only a draft can be changed; "
            "correct a finalized invoice with a credit note or void and reissue it.",
        )
    return invoice, period


def invoice_discard(*, invoice_id: int, reason: str, user: Any = None) -> BillingPeriod:
    """Delete a draft; its period goes back to ``closing`` so the next close run (or a
    re-rate) drafts it again. Returns the period. Raises ``InvoicingError``
    (``reason_required``, ``invoice_status``)."""
    if not reason.strip():
        raise InvoicingError("reason_required", "Give a reason to discard a draft.")
    with transaction.atomic():
        invoice, period = _locked_draft(invoice_id)
        org = Org.objects.get(pk=invoice.org_id)
        total = invoice.total
        invoice.delete()
        period.status = BillingPeriod.Status.CLOSING
        period.save(update_fields=["status"])
        audit_record(
            action="invoice.draft_discarded",
            object_type="invoice",
            object_key=f"draft-{invoice_id}",
            changes={"period": f"{period.start:%Y-%m-%d}", "total": total, "reason": reason},
            user=user,
            actor="finance",
            org=org,
        )
    return period


def invoice_rerate(*, invoice_id: int, as_of: datetime | None = None, user: Any = None) -> Invoice:
    """Rebuild a draft from its period rated again now (after a price or usage fix): the draft
    is discarded, the period re-rated (credits drawn again as needed) and drafted; one-off
    lines are carried over. Returns the new draft. Raises ``InvoicingError``."""
    from ..services import period_rate

    now = (as_of or timezone.now()).astimezone(UTC)
    with transaction.atomic():
        invoice, period = _locked_draft(invoice_id)
        before = invoice.total
        one_offs = list(
            InvoiceLine.objects.filter(invoice=invoice, kind=LineKind.ONE_OFF).order_by("position")
        )
        replaces_id = invoice.replaces_id
        invoice.delete()
        period.status = BillingPeriod.Status.CLOSING
        period.save(update_fields=["status"])
        period_rate(period_id=period.pk, as_of=max(now, period.end))
        draft, why = invoice_draft(period_id=period.pk, as_of=max(now, period.end + grace()))
        if draft is None:
            raise InvoicingError("rerate_failed", f"The period cannot be drafted: {why}.")
        if replaces_id and draft.replaces_id is None:
            Invoice.objects.filter(pk=draft.pk).update(replaces_id=replaces_id)
        for line in one_offs:
            _add_line(draft, amount=line.amount, description=line.description)
        draft = _retotal(draft)
        audit_record(
            action="invoice.draft_rerated",
            object_type="invoice",
            object_key=f"draft-{draft.pk}",
            changes={"replaces_draft": invoice_id, "total_before": before, "total": draft.total},
            user=user,
            actor="finance",
            org=Org.objects.get(pk=draft.org_id),
        )
    return draft


def invoice_add_one_off(
    *, invoice_id: int, amount: Decimal | str, description: str, user: Any = None
) -> InvoiceLine:
    """Add a one-off line (a setup fee, a goodwill credit: positive or negative) to a draft
    and recompute its totals; ``description`` (the reason, printed) is required. Raises
    ``InvoicingError`` (``reason_required``, ``invalid_amount``, ``amount_precision``,
    ``invoice_status``)."""
    description = description.strip()
    if not description:
        raise InvoicingError("reason_required", "Describe the one-off line (it is printed).")
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise InvoicingError("invalid_amount", f"{amount!r} is not an amount.") from None
    if not value.is_finite() or value == 0:
        raise InvoicingError("invalid_amount", f"{amount!r}: give a non-zero amount.")
    with transaction.atomic():
        invoice, _ = _locked_draft(invoice_id)
        if round_amount(value, invoice.currency) != value:
            raise InvoicingError(
                "amount_precision", f"{value} has more decimals than {invoice.currency} allows."
            )
        line = _add_line(invoice, amount=value, description=description)
        invoice = _retotal(invoice)
        audit_record(
            action="invoice.one_off_added",
            object_type="invoice",
            object_key=f"draft-{invoice.pk}",
            changes={"amount": value, "description": description, "total": invoice.total},
            user=user,
            actor="finance",
            org=Org.objects.get(pk=invoice.org_id),
        )
    return line


def _add_line(invoice: Invoice, *, amount: Decimal, description: str) -> InvoiceLine:
    position = InvoiceLine.objects.filter(invoice=invoice).count()
    return InvoiceLine.objects.create(
        org_id=invoice.org_id,
        invoice=invoice,
        position=position,
        kind=LineKind.ONE_OFF,
        charge_kind=LineKind.ONE_OFF,
        charge_line=position,
        product=None,
        description=description[:300],
        quantity=Decimal(1),
        unit="",
        unit_price=amount,
        amount=amount,
    )


def _retotal(invoice: Invoice) -> Invoice:
    """Recompute a draft's totals from its lines and its period's net credit draws."""
    invoice = Invoice.objects.select_related("issuer").get(pk=invoice.pk)
    subtotal = InvoiceLine.objects.filter(invoice=invoice).aggregate(t=Sum("amount"))["t"] or ZERO
    drawn = (
        CreditDraw.objects.filter(org_id=invoice.org_id, period_id=invoice.period_id).aggregate(
            t=Sum("amount")
        )["t"]
        or ZERO
    )
    tax = apply_totals(invoice, invoice_totals(invoice, subtotal=subtotal, credits=drawn))
    invoice.save(update_fields=["subtotal", "credits", "balance_carried", "tax_total", "total"])
    InvoiceTax.objects.filter(invoice=invoice).delete()
    tax.save()
    return invoice


@dataclass(frozen=True)
class VarianceRow:
    """One product's (or one-off/adjustment group's) amount on the draft and on the previous
    period's invoice; ``change_percent`` None when the previous amount is 0."""

    label: str
    amount: Decimal
    previous: Decimal
    change: Decimal
    change_percent: Decimal | None
    flagged: bool


def variance_threshold() -> Decimal:
    return Decimal(str(settings.TESSERA_VARIANCE_FLAG_PERCENT))


def invoice_variance(*, invoice: Invoice) -> tuple[Invoice | None, list[VarianceRow]]:
    """The invoice's amounts per product against the previous period's live (not void)
    invoice of the same contract. A row is flagged when its change exceeds
    ``TESSERA_VARIANCE_FLAG_PERCENT`` percent, or when it appears or disappears."""
    previous = (
        Invoice.objects.filter(
            contract_id=invoice.contract_id, period_start__lt=invoice.period_start
        )
        .exclude(status__in=(Status.VOID, Status.DRAFT))
        .order_by("-period_start", "-pk")
        .first()
    )
    current = _per_product(invoice)
    before = _per_product(previous) if previous else {}
    threshold = variance_threshold()
    rows = []
    for label in sorted(set(current) | set(before)):
        amount, prior = current.get(label, ZERO), before.get(label, ZERO)
        change = amount - prior
        percent = (change * 100 / abs(prior)).quantize(Decimal("0.1")) if prior else None
        flagged = previous is not None and (
            (percent is None and amount != 0) or (percent is not None and abs(percent) > threshold)
        )
        rows.append(VarianceRow(label, amount, prior, change, percent, flagged))
    return previous, rows


def _per_product(invoice: Invoice) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    names = dict(Product.objects.values_list("pk", "name"))
    for product_id, kind, amount in InvoiceLine.objects.filter(invoice=invoice).values_list(
        "product_id", "kind", "amount"
    ):
        if kind == LineKind.ONE_OFF:
            label = "One-off lines"
        elif kind == LineKind.ADJUSTMENT:
            label = "Prior-period adjustments"
        else:
            label = names.get(product_id, "Contract-wide")
        totals[label] = totals.get(label, ZERO) + amount
    return totals


def drafts_flagged(*, invoice_ids: list[int]) -> set[int]:
    """Which of the drafts have at least one flagged variance row (for the drafts list)."""
    flagged = set()
    for invoice in Invoice.objects.filter(pk__in=invoice_ids):
        _, rows = invoice_variance(invoice=invoice)
        if any(row.flagged for row in rows):
            flagged.add(invoice.pk)
    return flagged
