"""Closing periods into draft invoices (SPEC §6, §9 invoice run).

One drafting path: ``periods_close`` (the batch run) and ``invoice_draft`` (one period) both
go through ``_close_chunk``, which locks the periods, decides which are due and drafts them
with set queries and bulk inserts. A period whose org may have late usage of an earlier
invoiced period (SPEC §6 step 5) is drafted on its own, after the periods before it are
written, so it sees exactly what drafting one by one in that order would see.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Sum
from django.utils import timezone

from tenancy.models import Org

from ..lock_objects import lock_periods
from ..models import BillingPeriod, Contract, CreditDraw, Issuer, RatedCharge
from .adjustments import (
    adjustment_description,
    adjustments_for,
    periods_with_late_usage,
    rerate,
)
from .models import Invoice, InvoiceLine, InvoiceTax, LateUsageCheck, LineKind
from .tax import tax_rule
from .totals import Totals, document_totals

ZERO = Decimal(0)
CHUNK = 200  # periods per transaction in the close run
BULK_BATCH = 1000  # rows per INSERT statement (SQLite caps the parameters of one statement)
PeriodStatus = BillingPeriod.Status
KIND_ORDER = {kind: i for i, kind in enumerate(LineKind.values)}
ALREADY_INVOICED = "already invoiced"


def grace() -> timedelta:
    return timedelta(days=settings.TESSERA_GRACE_DAYS)


def chunks(ids: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    return (ids[i : i + size] for i in range(0, len(ids), size))


@dataclass
class CloseReport:
    """Ids only, so a run over every org keeps memory flat."""

    drafted_ids: list[int] = field(default_factory=list)
    already: int = 0
    skipped: list[tuple[BillingPeriod, str]] = field(default_factory=list)

    @property
    def drafted(self) -> list[Invoice]:
        """The drafted invoices, loaded on demand, in drafting order."""
        return list(Invoice.objects.filter(pk__in=self.drafted_ids).order_by("pk"))


def periods_to_close(*, as_of: datetime, org: Org | None = None) -> list[int]:
    """Ids of the periods whose grace window has ended by ``as_of`` and that are not
    invoiced yet, in (org, start) order."""
    query = BillingPeriod.objects.filter(
        status__in=(PeriodStatus.OPEN, PeriodStatus.CLOSING), end__lte=as_of - grace()
    )
    if org is not None:
        query = query.filter(org=org)
    return list(query.order_by("org_id", "start", "pk").values_list("pk", flat=True))


def stale_reason(period: BillingPeriod) -> str | None:
    """Why the period's rated charges cannot be invoiced yet, or None."""
    if period.rated_as_of is None or period.rated_as_of < period.end:
        return "not rated through its end yet"
    if period.usage_changed_at and period.rated_at and period.usage_changed_at > period.rated_at:
        return "usage changed since it was last rated"
    return None


def periods_close(*, as_of: datetime, org: Org | None = None) -> CloseReport:
    """Draft the invoice of every period whose grace window has ended (``close_periods``).
    Idempotent, and safe to run twice at once: each period gets exactly one invoice.

    Periods are drafted ``CHUNK`` to a transaction, in a handful of set queries per chunk
    (``_close_chunk``); a chunk's periods are locked in one statement in pk order, so
    concurrent runs wait for each other, never deadlock, and the second one finds the first
    one's periods invoiced. Only ``CHUNK`` periods' charges are in memory at a time."""
    report = CloseReport()
    for chunk in chunks(periods_to_close(as_of=as_of, org=org), CHUNK):
        with transaction.atomic():
            _close_chunk(chunk, as_of=as_of, report=report)
    return report


@transaction.atomic
def invoice_draft(*, period_id: int, as_of: datetime) -> tuple[Invoice | None, str]:
    """The draft invoice of one period, from its rated charges, plus adjustments for late
    usage of earlier invoiced periods: ``periods_close`` for that period alone. Returns
    (invoice, "") or (None, why not). Raises ``BillingPeriod.DoesNotExist``."""
    report = CloseReport()
    _close_chunk([period_id], as_of=as_of, report=report)
    if report.drafted_ids:
        return Invoice.objects.get(pk=report.drafted_ids[0]), ""
    if report.skipped:
        return None, report.skipped[0][1]
    if report.already:
        return None, ALREADY_INVOICED
    raise BillingPeriod.DoesNotExist(f"No billing period {period_id}.")


def _close_chunk(period_ids: Sequence[int], *, as_of: datetime, report: CloseReport) -> None:
    """Draft the due periods among ``period_ids``, in that order, inside the caller's
    transaction. Runs of periods without late usage to adjust are drafted together; a period
    whose org may have late usage to adjust (an earlier invoiced period with changed usage) is
    drafted alone, after the periods before it are written."""
    periods = lock_periods(period_ids=period_ids)
    # Checked under the period locks that every drafting takes first: the unique (org, period)
    # constraint is then never what tells us another run got there first.
    invoiced = set(
        Invoice.objects.filter(period_id__in=list(periods)).values_list("period_id", flat=True)
    )
    due: list[BillingPeriod] = []
    for period_id in period_ids:
        period = periods.get(period_id)
        if period is None:
            continue
        if period.status == PeriodStatus.INVOICED or period_id in invoiced:
            report.already += 1
            continue
        reason = "grace window not over" if period.end + grace() > as_of else stale_reason(period)
        if reason:
            report.skipped.append((period, reason))
            continue
        due.append(period)
    late_since = _late_usage_since(due)
    batch: list[BillingPeriod] = []
    for period in due:
        since = late_since.get(period.org_id)
        if since is not None and since < period.start:
            report.drafted_ids += _draft(batch, adjust=False)
            batch = []
            report.drafted_ids += _draft([period], adjust=True)
        else:
            batch.append(period)
        if period.usage_changed_at is not None:
            late_since[period.org_id] = min(since or period.start, period.start)
    report.drafted_ids += _draft(batch, adjust=False)


def _late_usage_since(periods: Sequence[BillingPeriod]) -> dict[int, datetime]:
    """Per org of ``periods``: the start of its earliest invoiced period whose usage changed
    at some point (a superset of what ``periods_with_late_usage`` may return)."""
    rows = (
        BillingPeriod.objects.filter(
            org_id__in={period.org_id for period in periods},
            status=PeriodStatus.INVOICED,
            usage_changed_at__isnull=False,
        )
        .values("org_id")
        .annotate(first=Min("start"))
        .order_by()
    )
    return {row["org_id"]: row["first"] for row in rows}


def _draft(periods: Sequence[BillingPeriod], *, adjust: bool) -> list[int]:
    """Draft the invoices of ``periods`` (locked, due) with set queries and bulk inserts;
    ``adjust``: add adjustment lines for late usage of the org's earlier invoiced periods
    (which must be written already). Returns the invoice ids in ``periods`` order."""
    if not periods:
        return []
    org_ids = {period.org_id for period in periods}
    period_ids = [period.pk for period in periods]
    contracts = Contract.objects.select_related("issuer", "org").in_bulk(
        {period.contract_id for period in periods}
    )
    charges: dict[int, list[RatedCharge]] = defaultdict(list)
    for charge in RatedCharge.objects.filter(
        org_id__in=org_ids, period_id__in=period_ids
    ).select_related("product"):
        charges[charge.period_id].append(charge)
    # Net credits the rating drew for each period from the grants' ledger (SPEC §6 step 7).
    credits = dict(
        CreditDraw.objects.filter(org_id__in=org_ids, period_id__in=period_ids)
        .values("period_id")
        .annotate(total=Sum("amount"))
        .order_by()
        .values_list("period_id", "total")
    )
    invoices: list[Invoice] = []
    lines: list[InvoiceLine] = []
    taxes: list[InvoiceTax] = []
    checks: list[LateUsageCheck] = []
    for period in periods:
        invoice = _new_invoice(period, contracts[period.contract_id])
        invoice_lines = _charge_lines(invoice, charges[period.pk])
        if adjust:
            adjustments, period_checks = _adjustment_lines(invoice, start=len(invoice_lines))
            invoice_lines += adjustments
            checks += period_checks
        subtotal = sum((line.amount for line in invoice_lines), ZERO)
        totals = invoice_totals(invoice, subtotal=subtotal, credits=credits.get(period.pk) or ZERO)
        taxes.append(apply_totals(invoice, totals))
        invoices.append(invoice)
        lines += invoice_lines
    Invoice.objects.bulk_create(invoices)
    InvoiceLine.objects.bulk_create(lines, batch_size=BULK_BATCH)
    InvoiceTax.objects.bulk_create(taxes)
    LateUsageCheck.objects.bulk_create(checks)
    BillingPeriod.objects.filter(pk__in=period_ids).update(status=PeriodStatus.INVOICED)
    for period in periods:
        period.status = PeriodStatus.INVOICED
    return [invoice.pk for invoice in invoices]


def invoice_totals(invoice: Invoice, *, subtotal: Decimal, credits: Decimal) -> Totals:
    """The totals of ``invoice`` (its legal snapshot and issuer loaded), with the tax rule of
    its issuer and customer (SPEC §6 steps 6-8)."""
    rule = tax_rule(
        issuer_country=invoice.issuer_country,
        customer_country=invoice.customer_country,
        customer_vat_id=invoice.customer_vat_id,
    )
    return document_totals(
        subtotal=subtotal,
        credits=credits,
        rules=[rule],
        currency=invoice.currency,
        rounding=invoice.issuer.rounding,
    )


def apply_totals(invoice: Invoice, totals: Totals) -> InvoiceTax:
    """Copy ``totals`` onto the (unsaved or draft) ``invoice``; returns its unsaved tax row.
    The caller saves both."""
    (tax,) = totals.taxes
    invoice.subtotal = totals.subtotal
    invoice.credits = totals.credits
    invoice.tax_total = totals.tax_total
    invoice.total = totals.total
    return InvoiceTax(
        org_id=invoice.org_id,
        invoice=invoice,
        rate=tax.rate,
        basis=tax.basis,
        amount=tax.amount,
        reason=tax.reason,
        mention=tax.mention,
    )


def _new_invoice(period: BillingPeriod, contract: Contract) -> Invoice:
    """The unsaved draft of ``period`` (``contract`` with its org and issuer loaded)."""
    org, issuer = contract.org, contract.issuer
    return Invoice(
        org=org,
        issuer=issuer,
        contract=contract,
        period=period,
        currency=period.currency,
        period_start=period.start,
        period_end=period.end,
        payment_terms_days=contract.payment_terms_days,
        charges_rated_at=period.rated_at,
        **legal_snapshot(org, issuer),
    )


def legal_snapshot_fields() -> list[str]:
    return [
        *(f"customer_{name}" for name in ("name", "address", "country", "vat_id")),
        *(f"issuer_{name}" for name in ("name", "address", "country", "vat_id")),
    ]


def legal_snapshot(org: Org, issuer: Issuer) -> dict[str, str]:
    """The org's and issuer's legal details as an invoice prints them (refreshed while
    draft, frozen at finalization)."""
    return {
        "customer_name": org.name,
        "customer_address": org.billing_address,
        "customer_country": org.country.upper(),
        "customer_vat_id": org.vat_id,
        "issuer_name": issuer.legal_name,
        "issuer_address": issuer.address,
        "issuer_country": issuer.country.upper(),
        "issuer_vat_id": issuer.vat_id,
    }


def _charge_lines(invoice: Invoice, charges: list[RatedCharge]) -> list[InvoiceLine]:
    """The lines of ``charges`` (the period's, with their products loaded); sorts them."""
    # Grouped by product (the contract-wide true-up last), then kind, then tier/line.
    charges.sort(key=lambda c: (c.product is None, c.product.key if c.product else "",
                                KIND_ORDER[c.kind], c.line))  # fmt: skip
    return [
        InvoiceLine(
            org_id=invoice.org_id,
            invoice=invoice,
            position=position,
            kind=charge.kind,
            charge_kind=charge.kind,
            charge_line=charge.line,
            product=charge.product,
            description=_describe(charge.product.name if charge.product else "", charge),
            quantity=charge.quantity,
            unit=charge.product.unit if charge.product else "",
            unit_price=charge.unit_price,
            amount=charge.amount,
        )
        for position, charge in enumerate(charges)
    ]


def _describe(product_name: str, charge: RatedCharge) -> str:
    label = LineKind(charge.kind).label
    parts = [f"{product_name}: {label.lower()}" if product_name else label]
    if charge.description:
        parts.append(f"({charge.description})")
    return " ".join(parts)[:300]


def _adjustment_lines(
    invoice: Invoice, *, start: int
) -> tuple[list[InvoiceLine], list[LateUsageCheck]]:
    """Adjustment lines (positions from ``start``) for late usage of earlier invoiced periods,
    and the record of each period checked (both unsaved: the invoice is not saved yet)."""
    lines: list[InvoiceLine] = []
    checks: list[LateUsageCheck] = []
    for old in periods_with_late_usage(invoice=invoice):
        rated_at = timezone.now()
        charges = rerate(period=old, as_of=max(rated_at, old.end))
        checks.append(
            LateUsageCheck(org_id=invoice.org_id, period=old, invoice=invoice, rated_at=rated_at)
        )
        for adjustment in adjustments_for(period=old, charges=charges):
            lines.append(
                InvoiceLine(
                    org_id=invoice.org_id,
                    invoice=invoice,
                    position=start + len(lines),
                    kind=LineKind.ADJUSTMENT,
                    charge_kind=adjustment.charge_kind,
                    charge_line=adjustment.charge_line,
                    product=adjustment.product,
                    description=adjustment_description(adjustment)[:300],
                    quantity=adjustment.quantity,
                    unit=adjustment.product.unit if adjustment.product else "",
                    unit_price=adjustment.unit_price,
                    amount=adjustment.amount,
                    adjusts_period=old,
                )
            )
    return lines, checks
