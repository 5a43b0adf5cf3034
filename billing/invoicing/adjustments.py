"""Late usage for an already invoiced period (SPEC §6 step 5).

The period is rated again with all its usage, through the rating engine's read-only
``compute_period``, and the difference
from everything already billed for it — its own invoice's lines plus earlier adjustments —
line kind by line kind and product by product, becomes ``adjustment`` lines naming it. Since
it is a difference from what was billed, running it again adds nothing; extra usage that the
old period's minimum true-up absorbs nets to zero (burst up, true-up down by as much).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Max, Q

from ..models import BillingPeriod, Product
from ..rating.engine import ChargeLine, compute_period
from .models import Invoice, InvoiceLine, LateUsageCheck, LineKind

ZERO = Decimal(0)
Key = tuple[int | None, str, int]  # (product id, charge kind, charge line)


@dataclass(frozen=True)
class AdjustmentValues:
    period: BillingPeriod
    product: Product | None
    charge_kind: str
    charge_line: int
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    list_unit_price: Decimal | None = None  # the unit price's list price when discounted


def rerate(*, period: BillingPeriod, as_of: datetime) -> Sequence[ChargeLine]:
    """The charges of ``period`` with all its usage as of ``as_of`` (the rating engine's
    ``compute_period``); writes nothing."""
    return list(compute_period(period=period, as_of=as_of).lines)


def periods_with_late_usage(*, invoice: Invoice) -> list[BillingPeriod]:
    """Earlier invoiced periods of the invoice's org, same issuer and currency, whose usage
    changed after it was last billed or checked. A final adjustment invoice also adjusts its
    own period (the last one it follows)."""
    candidates = BillingPeriod.objects.filter(
        org_id=invoice.org_id,
        status=BillingPeriod.Status.INVOICED,
        currency=invoice.currency,
        contract__issuer_id=invoice.issuer_id,
        usage_changed_at__isnull=False,
    ).order_by("start", "pk")
    if invoice.kind == Invoice.Kind.FINAL_ADJUSTMENT:
        candidates = candidates.filter(start__lte=invoice.period_start)
    else:
        candidates = candidates.filter(start__lt=invoice.period_start)
    due = []
    for period in candidates:
        billed_at = (
            Invoice.objects.filter(org_id=invoice.org_id, period=period, kind=Invoice.Kind.PERIOD)
            .exclude(status=Invoice.Status.VOID)
            .values_list("charges_rated_at", flat=True)
            .first()
        )
        checked_at = LateUsageCheck.objects.filter(org_id=invoice.org_id, period=period).aggregate(
            last=Max("rated_at")
        )["last"]
        marks = [m for m in (billed_at, checked_at, period.rated_at) if m is not None]
        assert period.usage_changed_at is not None
        if not marks or period.usage_changed_at > max(marks):
            due.append(period)
    return due


Billed = tuple[Decimal, Decimal, Decimal, Decimal | None]


def billed_for(*, period: BillingPeriod) -> dict[Key, Billed]:
    """(quantity, amount, last unit price, its list price or None) billed so far for
    ``period``, per charge key."""
    rows = (
        InvoiceLine.objects.filter(org_id=period.org_id)
        .filter(Q(invoice__period=period, adjusts_period__isnull=True) | Q(adjusts_period=period))
        .exclude(invoice__status=Invoice.Status.VOID)
        .exclude(kind=LineKind.ONE_OFF)  # finance's own lines: no rating ever reproduces them
        .order_by("invoice_id", "position")
        .values_list(
            "product_id", "charge_kind", "charge_line", "quantity", "amount", "unit_price",
            "list_unit_price",
        )
    )  # fmt: skip
    billed: dict[Key, Billed] = {}
    for product_id, kind, line, quantity, amount, unit_price, listed in rows:
        q, a, _, _ = billed.get((product_id, kind, line), (ZERO, ZERO, ZERO, None))
        billed[(product_id, kind, line)] = (q + quantity, a + amount, unit_price, listed)
    return billed


def adjustments_for(
    *, period: BillingPeriod, charges: Iterable[ChargeLine]
) -> list[AdjustmentValues]:
    """The differences between ``charges`` (a re-rating) and what was billed for ``period``."""
    rated: dict[Key, tuple[Decimal, Decimal, Decimal, Decimal | None, Product | None]] = {}
    for c in charges:
        key = (c.product.pk if c.product else None, str(c.kind), c.line)
        q, a, *_ = rated.get(key, (ZERO, ZERO, ZERO, None, None))
        rated[key] = (q + c.quantity, a + c.amount, c.unit_price, c.list_unit_price, c.product)
    billed = billed_for(period=period)
    products = Product.objects.in_bulk([k[0] for k in billed if k[0] is not None])
    adjustments = []
    for key in sorted(set(rated) | set(billed), key=lambda k: (k[0] or 0, k[1], k[2])):
        new_q, new_a, new_price, new_list, product = rated.get(key, (ZERO, ZERO, ZERO, None, None))
        old_q, old_a, old_price, old_list = billed.get(key, (ZERO, ZERO, ZERO, None))
        if new_q == old_q and new_a == old_a:
            continue
        product_id, kind, line = key
        if product is None and product_id is not None:
            product = products[product_id]
        adjustments.append(
            AdjustmentValues(
                period=period,
                product=product,
                charge_kind=kind,
                charge_line=line,
                quantity=new_q - old_q,
                unit_price=new_price if key in rated else old_price,
                amount=new_a - old_a,
                list_unit_price=new_list if key in rated else old_list,
            )
        )
    return adjustments


def adjustment_description(adjustment: AdjustmentValues) -> str:
    what = adjustment.product.name if adjustment.product else "Contract"
    label = LineKind(adjustment.charge_kind).label if adjustment.charge_kind in LineKind else ""
    first, last = adjustment.period.start.date(), adjustment.period.end.date() - timedelta(days=1)
    return f"Adjustment {first} to {last}: {what}, {label.lower()}"
