"""Closing periods into draft invoices (SPEC §6, §9 invoice run).

One drafting path: ``periods_close`` (the batch run) and ``invoice_draft`` (one period) both
go through ``_close_chunk``, which locks the periods, decides which are due and drafts them
with set queries and bulk inserts. A period whose org may have late usage of an earlier
invoiced period (SPEC §6 step 5) is drafted on its own, after the periods before it are
written, so it sees exactly what drafting one by one in that order would see. Late usage that
no next invoice will carry goes on a final adjustment invoice (``periods_settle``, SPEC §3
"Unbilled usage").
"""

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Min, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import audit_entry
from metering.models import QuarantinedWork
from metering.quarantine import attempt
from tenancy.models import Org

from ..legal import details_snapshot
from ..lock_objects import lock_period, lock_periods
from ..models import BillingPeriod, Contract, CreditDraw, Issuer, RatedCharge
from ..rating.pricing import list_price_words
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
CLOSE = QuarantinedWork.Kind.CLOSE


def grace() -> timedelta:
    return timedelta(days=settings.TESSERA_GRACE_DAYS)


def chunks(ids: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    return (ids[i : i + size] for i in range(0, len(ids), size))


@dataclass
class CloseReport:
    """Ids only, so a run over every org keeps memory flat. ``failed``: (org slug, error) of
    the orgs whose close failed and was quarantined (SPEC §8); ``final_adjustments``: how many
    of the drafts are final adjustment invoices."""

    drafted_ids: list[int] = field(default_factory=list)
    already: int = 0
    skipped: list[tuple[BillingPeriod, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    final_adjustments: int = 0

    def add(self, other: "CloseReport") -> None:
        self.drafted_ids += other.drafted_ids
        self.already += other.already
        self.skipped += other.skipped
        self.failed += other.failed
        self.final_adjustments += other.final_adjustments

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
    one's periods invoiced. Only ``CHUNK`` periods' charges are in memory at a time.

    Faults are isolated per org (SPEC §8): a chunk that fails is rolled back and closed again
    org by org; an org that still fails is quarantined and listed in ``failed``, every other
    org is closed. Then final adjustment invoices are drafted for late usage that no next
    invoice will carry (``periods_settle``)."""
    report = CloseReport()
    held = QuarantinedWork.objects.filter(kind=CLOSE, resolved_at__isnull=True).exists()
    for chunk in chunks(periods_to_close(as_of=as_of, org=org), CHUNK):
        part = CloseReport()
        try:
            with transaction.atomic():
                _close_chunk(chunk, as_of=as_of, report=part)
        except Exception:
            part = _close_org_by_org(chunk, as_of=as_of)
        else:
            if held:  # the orgs of this chunk closed: their earlier failures are resolved
                QuarantinedWork.objects.filter(
                    kind=CLOSE,
                    resolved_at__isnull=True,
                    org_id__in=BillingPeriod.objects.filter(pk__in=chunk).values("org_id"),
                ).update(resolved_at=timezone.now())
        report.add(part)
    report.add(periods_settle(as_of=as_of, org=org))
    return report


def _close_org_by_org(period_ids: Sequence[int], *, as_of: datetime) -> CloseReport:
    """The periods of a failed chunk again, one transaction per org, in the chunk's order."""
    owner = dict(BillingPeriod.objects.filter(pk__in=period_ids).values_list("pk", "org_id"))
    by_org: dict[int, list[int]] = {}
    for pk in period_ids:
        if pk in owner:
            by_org.setdefault(owner[pk], []).append(pk)
    orgs = Org.objects.in_bulk(list(by_org))
    report = CloseReport()
    for org_id, ids in by_org.items():
        part = CloseReport()
        outcome = attempt(
            partial(_close_chunk, ids, as_of=as_of, report=part), kind=CLOSE, org=orgs[org_id]
        )
        if outcome.ok:
            report.add(part)
        else:
            report.failed.append((orgs[org_id].slug, outcome.error))
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
        Invoice.objects.filter(period_id__in=list(periods))
        .exclude(status=Invoice.Status.VOID)
        .values_list("period_id", flat=True)
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
    # A period reopened by a void is drafted again: the new invoice names the one it replaces.
    replaced = dict(
        Invoice.objects.filter(
            org_id__in=org_ids, period_id__in=period_ids, status=Invoice.Status.VOID,
            replaced_by__isnull=True,
        )
        .order_by("period_id", "pk")
        .values_list("period_id", "pk")
    )  # fmt: skip
    invoices: list[Invoice] = []
    lines: list[InvoiceLine] = []
    taxes: list[InvoiceTax] = []
    checks: list[LateUsageCheck] = []
    for period in periods:
        invoice = _new_invoice(period, contracts[period.contract_id])
        invoice.replaces_id = replaced.get(period.pk)
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
    AuditEntry.objects.bulk_create(
        audit_entry(
            action="invoice.drafted",
            object_type="invoice",
            object_key=f"draft-{invoice.pk}",
            changes={
                "period": f"{invoice.period_start:%Y-%m-%d} → {invoice.period_end:%Y-%m-%d}",
                "total": invoice.total,
                **({"replaces": invoice.replaces_id} if invoice.replaces_id else {}),
            },
            actor="close_periods",
            org=contracts[invoice.contract_id].org,
        )
        for invoice in invoices
    )
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
    invoice.balance_carried = totals.carried
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
        *(f"customer_{name}" for name in ("name", "address", "country", "vat_id", "email")),
        *(f"issuer_{name}" for name in ("name", "address", "country", "vat_id", "details")),
    ]


def legal_snapshot(org: Org, issuer: Issuer) -> dict[str, Any]:
    """The org's and issuer's legal details as an invoice prints them (refreshed while
    draft, frozen at finalization); ``issuer_details`` per ``legal.details_snapshot``."""
    return {
        "customer_name": org.name,
        "customer_address": org.billing_address,
        "customer_country": org.country.upper(),
        "customer_vat_id": org.vat_id,
        "customer_email": org.billing_email,
        "issuer_name": issuer.legal_name,
        "issuer_address": issuer.address,
        "issuer_country": issuer.country.upper(),
        "issuer_vat_id": issuer.vat_id,
        "issuer_details": details_snapshot(issuer),
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
            unit=_unit(charge),
            unit_price=charge.unit_price,
            list_unit_price=charge.list_unit_price,
            amount=charge.amount,
        )
        for position, charge in enumerate(charges)
    ]


def _unit(charge: RatedCharge) -> str:
    package = _package(charge)
    if package is not None:
        return package[1][:50]
    return charge.product.unit if charge.product else ""


def _describe(product_name: str, charge: RatedCharge) -> str:
    label = LineKind(charge.kind).label
    parts = [f"{product_name}: {label.lower()}" if product_name else label]
    package = _package(charge)
    if package is not None:
        parts.append(f"({package[0]})")
    elif charge.description:
        parts.append(f"({charge.description})")
    return " ".join(parts)[:300]


# How pricing describes a package line: "7 × 10 (61.78 used)" (blocks × size, quantity used),
# then the rating's words for its discount, which the line restates from its stored prices
# (the words themselves only for a charge rated before list prices were stored).
_PACKAGE = re.compile(r"^(\d+) × ([\d.]+) \(([\d.]+) used\)(?:; (.+))?$")
_SIZED_UNIT = re.compile(r"^(\d+(?:\.\d+)?)([kKMGT]?)\s+(.+)$")


def _package(charge: RatedCharge) -> tuple[str, str] | None:
    """For a package line: ("7 packages of 10M tokens (61.78M used)", "package of 10M
    tokens"), the package being the line's unit (quantity 7 × the package's price = the
    amount); None for any other line."""
    match = _PACKAGE.match(charge.description or "")
    if match is None or charge.product is None:
        return None
    blocks, size, used = int(match.group(1)), Decimal(match.group(2)), Decimal(match.group(3))
    unit = charge.product.unit
    sized = _SIZED_UNIT.match(unit)

    def amount_of(quantity: Decimal) -> str:
        if sized is None:
            return f"{quantity.normalize():f} {unit}"
        scaled = (quantity * Decimal(sized.group(1))).normalize()
        return f"{scaled:f}{sized.group(2)}" + ("" if sized.group(2) else f" {sized.group(3)}")

    of_size = amount_of(size)
    if sized is not None and sized.group(2):
        of_size = f"{of_size} {sized.group(3)}"
    noun = "package" if blocks == 1 else "packages"
    words = f"{blocks} {noun} of {of_size} ({amount_of(used)} used)"
    if charge.list_unit_price is not None:  # the discount, stated: "10% off list price 25.00"
        words += f"; {list_price_words(charge.list_unit_price, charge.unit_price)}"
    elif match.group(4):
        words += f"; {match.group(4)}"
    return words, f"package of {of_size}"


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
                    list_unit_price=adjustment.list_unit_price,
                    amount=adjustment.amount,
                    adjusts_period=old,
                )
            )
    return lines, checks


# --- final adjustment invoices ------------------------------------------------------------
# Late usage of an invoiced period goes on the org's next invoice of the same issuer and
# currency. When none will come (every such contract has ended, every period is invoiced),
# ``periods_settle`` drafts a final adjustment invoice, hosted by the last period, with only
# adjustment lines; once the latest late change is a grace window old, so that usage arriving
# together is billed together. The periods it re-rates are recorded (``LateUsageCheck``), so a
# second run finds nothing left.

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def pending_late_usage() -> Q:
    """Invoiced periods whose usage changed after they were last billed, checked or rated:
    in SQL, what ``periods_with_late_usage`` checks one period at a time."""
    billed = Invoice.objects.filter(
        org_id=OuterRef("org_id"), period=OuterRef("pk"), kind=Invoice.Kind.PERIOD
    ).values("charges_rated_at")[:1]
    checked = (
        LateUsageCheck.objects.filter(org_id=OuterRef("org_id"), period=OuterRef("pk"))
        .order_by("-rated_at")
        .values("rated_at")[:1]
    )
    last_seen = Greatest(
        Coalesce(Subquery(billed), Value(EPOCH)),
        Coalesce(Subquery(checked), Value(EPOCH)),
        Coalesce(F("rated_at"), Value(EPOCH)),
    )
    return Q(status=PeriodStatus.INVOICED, usage_changed_at__gt=last_seen)


def settlement_hosts(*, as_of: datetime, org: Org | None = None) -> list[int]:
    """Ids of the periods that host a final adjustment invoice as of ``as_of``: per (org,
    issuer, currency) whose contracts have all ended and whose periods are all invoiced, the
    last period, when one of those periods has late usage not billed yet."""
    series = Contract.objects.filter(
        org_id=OuterRef("org_id"), issuer_id=OuterRef("contract__issuer_id"),
        currency=OuterRef("currency"),
    )  # fmt: skip
    going_on = series.filter(Q(end__isnull=True) | Q(end__gt=as_of.date()))
    not_invoiced = BillingPeriod.objects.filter(
        org_id=OuterRef("org_id"),
        contract__issuer_id=OuterRef("contract__issuer_id"),
        currency=OuterRef("currency"),
    ).exclude(status=PeriodStatus.INVOICED)
    late = BillingPeriod.objects.filter(pending_late_usage()).filter(
        ~Exists(going_on), ~Exists(not_invoiced)
    )
    if org is not None:
        late = late.filter(org=org)
    hosts = []
    for org_id, issuer_id, currency in (
        late.values_list("org_id", "contract__issuer_id", "currency").distinct().order_by()
    ):
        last = (
            BillingPeriod.objects.filter(
                org_id=org_id, contract__issuer_id=issuer_id, currency=currency
            )
            .order_by("-start", "-pk")
            .values_list("pk", flat=True)
            .first()
        )
        if last is not None:
            hosts.append(last)
    return sorted(hosts)


def final_adjustment_draft(*, period_id: int, as_of: datetime) -> Invoice | None:
    """Draft the final adjustment invoice hosted by ``period_id`` (a period from
    ``settlement_hosts``) if late usage is left to bill and its latest change is a grace
    window old; else None. Run inside a transaction: the host period's row lock serializes
    concurrent runs, and the second one finds the first one's checks."""
    host = lock_period(period_id=period_id)
    if host.status != PeriodStatus.INVOICED:
        return None
    contract = Contract.objects.select_related("issuer", "org").get(pk=host.contract_id)
    invoice = _new_invoice(host, contract)
    invoice.kind = Invoice.Kind.FINAL_ADJUSTMENT
    invoice.charges_rated_at = None  # none of the host's charges are copied: adjustments only
    late = periods_with_late_usage(invoice=invoice)
    if not late or max(p.usage_changed_at or as_of for p in late) > as_of - grace():
        return None
    lines, checks = _adjustment_lines(invoice, start=0)
    if not lines:
        return None
    subtotal = sum((line.amount for line in lines), ZERO)
    tax = apply_totals(invoice, invoice_totals(invoice, subtotal=subtotal, credits=ZERO))
    invoice.save()
    InvoiceLine.objects.bulk_create(lines)
    InvoiceTax.objects.bulk_create([tax])
    LateUsageCheck.objects.bulk_create(checks)
    return invoice


def periods_settle(*, as_of: datetime, org: Org | None = None) -> CloseReport:
    """Draft every final adjustment invoice due by ``as_of`` (``close_periods`` runs this
    after closing periods), one host period per transaction; a host that fails is
    quarantined and listed in ``failed``, the others are drafted."""
    report = CloseReport()
    hosts = settlement_hosts(as_of=as_of, org=org)
    owners = dict(BillingPeriod.objects.filter(pk__in=hosts).values_list("pk", "org_id"))
    orgs = Org.objects.in_bulk(set(owners.values()))
    for host_id in hosts:
        outcome = attempt(
            partial(final_adjustment_draft, period_id=host_id, as_of=as_of),
            kind=QuarantinedWork.Kind.CLOSE,
            org=orgs[owners[host_id]],
            unit=f"final-adjustment:{host_id}",
        )
        if not outcome.ok:
            report.failed.append((orgs[owners[host_id]].slug, outcome.error))
        elif outcome.value is not None:
            report.drafted_ids.append(outcome.value.pk)
            report.final_adjustments += 1
    return report
