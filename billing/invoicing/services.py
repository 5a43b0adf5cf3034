"""Invoicing writes: close periods into drafts, finalize, void, credit notes (SPEC §3, §6).

Locks are taken through ``lock_period`` / ``lock_invoice`` (one row each, always before the
document counter), so concurrent runs serialize per period or invoice and never deadlock.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Min, Sum
from django.utils import timezone

from audit.models import AuditEntry
from tenancy.models import Org

from ..legal import details_snapshot
from ..models import BillingPeriod, Contract, CreditDraw, Issuer, RatedCharge
from ..money import round_amount
from .adjustments import (
    adjustment_description,
    adjustments_for,
    periods_with_late_usage,
    rerate,
)
from .fx import FxRateMissing, national_vat
from .models import (
    CreditNote,
    CreditNoteLine,
    CreditNoteTax,
    DocumentCounter,
    Invoice,
    InvoiceLine,
    InvoiceTax,
    LateUsageCheck,
    LineKind,
)
from .numbering import format_number, next_number, reserve_numbers
from .tax import tax_rule

ZERO = Decimal(0)
CHUNK = 200  # documents per transaction in the batch runs
BULK_BATCH = 1000  # rows per INSERT statement (SQLite caps the parameters of one statement)
Status = Invoice.Status
PeriodStatus = BillingPeriod.Status
KIND_ORDER = {kind: i for i, kind in enumerate(LineKind.values)}
# A finalized invoice's status moves only forward (the database trigger says the same).
FORWARD: dict[str, set[str]] = {
    Status.DRAFT: {Status.FINALIZED},
    Status.FINALIZED: {Status.PAID, Status.VOID, Status.UNCOLLECTIBLE},
    Status.UNCOLLECTIBLE: {Status.PAID, Status.VOID},
    Status.PAID: set(),
    Status.VOID: set(),
}


class InvoicingError(Exception):
    """A request the invoicing rules refuse; ``code`` is stable (API error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def lock_period(*, period_id: int) -> BillingPeriod:
    return BillingPeriod.objects.select_for_update().get(pk=period_id)


def lock_invoice(*, invoice_id: int) -> Invoice:
    return Invoice.objects.select_for_update().get(pk=invoice_id)


def lock_periods(*, period_ids: Iterable[int]) -> dict[int, BillingPeriod]:
    """Lock the periods in one statement, in pk order (so batches that overlap wait for each
    other, never deadlock). Returns them by pk; a period that no longer exists is absent."""
    query = BillingPeriod.objects.select_for_update().filter(pk__in=list(period_ids))
    return {period.pk: period for period in query.order_by("pk")}


def lock_invoices(*, invoice_ids: Iterable[int]) -> dict[int, Invoice]:
    """Lock the invoices in one statement, in pk order; returns them by pk."""
    query = Invoice.objects.select_for_update().filter(pk__in=list(invoice_ids))
    return {invoice.pk: invoice for invoice in query.order_by("pk")}


def grace() -> timedelta:
    return timedelta(days=settings.TESSERA_GRACE_DAYS)


# --- close: periods → draft invoices ------------------------------------------------------


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


def chunks(ids: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    return (ids[i : i + size] for i in range(0, len(ids), size))


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


def _close_chunk(period_ids: Sequence[int], *, as_of: datetime, report: CloseReport) -> None:
    """Draft the chunk's due periods in ``period_ids`` order (the order of ``invoice_draft``
    one by one). A period whose org may have late usage to adjust (an earlier invoiced period
    with changed usage) goes through ``invoice_draft`` itself, after the periods before it are
    written, so it sees exactly what it would see one by one; the rest are drafted together."""
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
            report.drafted_ids += _draft_many(batch)
            batch = []
            invoice, _ = invoice_draft(period_id=period.pk, as_of=as_of)
            assert invoice is not None  # checked above, under the same lock
            report.drafted_ids.append(invoice.pk)
        else:
            batch.append(period)
        if period.usage_changed_at is not None:
            late_since[period.org_id] = min(since or period.start, period.start)
    report.drafted_ids += _draft_many(batch)


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


def _draft_many(periods: Sequence[BillingPeriod]) -> list[int]:
    """Draft the invoices of ``periods`` (locked, due, no late usage to adjust) with set
    queries and bulk inserts; returns the invoice ids in ``periods`` order."""
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
    credits = dict(
        CreditDraw.objects.filter(org_id__in=org_ids, period_id__in=period_ids)
        .values("period_id")
        .annotate(total=Sum("amount"))
        .order_by()
        .values_list("period_id", "total")
    )
    invoices, lines, taxes = [], [], []
    for period in periods:
        invoice = _new_invoice(period, contracts[period.contract_id])
        invoice_lines = _charge_lines(invoice, charges[period.pk])
        subtotal = sum((line.amount for line in invoice_lines), ZERO)
        taxes.append(_totals(invoice, subtotal=subtotal, credits=credits.get(period.pk) or ZERO))
        invoices.append(invoice)
        lines += invoice_lines
    Invoice.objects.bulk_create(invoices)
    InvoiceLine.objects.bulk_create(lines, batch_size=BULK_BATCH)
    InvoiceTax.objects.bulk_create(taxes)
    BillingPeriod.objects.filter(pk__in=period_ids).update(status=PeriodStatus.INVOICED)
    for period in periods:
        period.status = PeriodStatus.INVOICED
    return [invoice.pk for invoice in invoices]


@transaction.atomic
def invoice_draft(*, period_id: int, as_of: datetime) -> tuple[Invoice | None, str]:
    """The draft invoice of one period, from its rated charges, plus adjustments for late
    usage of earlier invoiced periods. Returns (invoice, "") or (None, why not)."""
    period = lock_period(period_id=period_id)
    if period.status == PeriodStatus.INVOICED:
        return None, "already invoiced"
    if period.end + grace() > as_of:
        return None, "grace window not over"
    reason = stale_reason(period)
    if reason:
        return None, reason
    contract = Contract.objects.select_related("issuer", "org").get(pk=period.contract_id)
    invoice = _new_invoice(period, contract)
    charges = RatedCharge.objects.filter(org_id=period.org_id, period=period)
    lines = _charge_lines(invoice, list(charges.select_related("product")))
    adjustments, checks = _adjustment_lines(invoice, start_position=len(lines))
    lines += adjustments
    subtotal = sum((line.amount for line in lines), ZERO)
    tax = _totals(invoice, subtotal=subtotal, credits=_ledger_credits(period))
    invoice.save()
    InvoiceLine.objects.bulk_create(lines)
    tax.save()
    LateUsageCheck.objects.bulk_create(checks)
    period.status = PeriodStatus.INVOICED
    period.save(update_fields=["status"])
    return invoice, ""


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
        **_legal_snapshot(org, issuer),
    )


def _legal_snapshot_fields() -> list[str]:
    return [
        *(f"customer_{name}" for name in ("name", "address", "country", "vat_id", "email")),
        *(f"issuer_{name}" for name in ("name", "address", "country", "vat_id", "details")),
    ]


def _legal_snapshot(org: Org, issuer: Issuer) -> dict[str, Any]:
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
    invoice: Invoice, *, start_position: int
) -> tuple[list[InvoiceLine], list[LateUsageCheck]]:
    """Adjustment lines for late usage of earlier invoiced periods, and the record of each
    period checked (both unsaved: the invoice is not saved yet)."""
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
                    position=start_position + len(lines),
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


def _ledger_credits(period: BillingPeriod) -> Decimal:
    """Net credits the rating drew for this period from the grants' ledger (SPEC §6 step 7)."""
    total = CreditDraw.objects.filter(org_id=period.org_id, period=period).aggregate(
        total=Sum("amount")
    )["total"]
    return total or ZERO


def _totals(invoice: Invoice, *, subtotal: Decimal, credits: Decimal) -> InvoiceTax:
    """Subtotal = Σ rounded lines; credits ≤ subtotal; tax once per rate on subtotal −
    credits; total = subtotal − credits + tax (SPEC §6 steps 6-8). Sets the totals on
    ``invoice`` and returns its (unsaved) tax line; the caller saves both."""
    credits = min(max(credits, ZERO), max(subtotal, ZERO))
    rule = tax_rule(
        issuer_country=invoice.issuer_country,
        customer_country=invoice.customer_country,
        customer_vat_id=invoice.customer_vat_id,
    )
    basis = subtotal - credits
    tax = InvoiceTax(
        org_id=invoice.org_id,
        invoice=invoice,
        rate=rule.rate,
        basis=basis,
        amount=rule.amount(basis, invoice.currency, invoice.issuer.rounding),
        reason=rule.reason,
        mention=rule.mention,
    )
    invoice.subtotal = subtotal
    invoice.credits = credits
    invoice.tax_total = tax.amount
    invoice.total = subtotal - credits + tax.amount
    return tax


# --- finalize ------------------------------------------------------------------------------


def invoice_finalize(
    *, invoice_id: int, as_of: datetime | None = None, user: Any = None
) -> Invoice:
    """Number the invoice (gapless per issuer and year), freeze the org's and issuer's legal
    details and the VAT in national currency, set issue and due dates. Idempotent: a
    finalized invoice is returned as is. Raises ``InvoicingError("fx_rate_missing")`` when
    its VAT must be stated in national currency and no recent ECB rate is loaded."""
    problems: dict[int, str] = {}
    invoice = invoices_finalize_many(
        invoice_ids=[invoice_id], as_of=as_of, user=user, problems=problems
    )[0]
    if invoice_id in problems:
        raise InvoicingError("fx_rate_missing", problems[invoice_id])
    return invoice


def invoices_finalize_many(
    *,
    invoice_ids: Sequence[int],
    as_of: datetime | None = None,
    user: Any = None,
    problems: dict[int, str] | None = None,
) -> list[Invoice]:
    """``invoice_finalize`` for each of ``invoice_ids``, in one transaction and a handful of
    queries; returns the invoices in ``invoice_ids`` order. The drafts among them are numbered
    in that order, from one block of numbers per (issuer, year) taken from the locked counter
    row (so the numbers are those one-by-one finalization in this order would give, and a
    rollback gives the whole block back). Raises ``Invoice.DoesNotExist`` if one is missing.

    Locks: the invoices in one statement in pk order, then the counters (``reserve_numbers``),
    so batches and single finalizations wait for each other and never deadlock."""
    as_of = (as_of or timezone.now()).astimezone(UTC)
    with transaction.atomic():
        invoices = lock_invoices(invoice_ids=invoice_ids)
        missing = [pk for pk in invoice_ids if pk not in invoices]
        if missing:
            raise Invoice.DoesNotExist(f"No invoice {missing[0]}.")
        drafts = [invoices[pk] for pk in dict.fromkeys(invoice_ids) if invoices[pk].is_draft]
        if drafts:
            _finalize_drafts(drafts, as_of=as_of, user=user, problems=problems)
    return [invoices[pk] for pk in invoice_ids]


def _freeze_national_vat(
    drafts: list[Invoice], *, issue_date: date, problems: dict[int, str] | None
) -> list[Invoice]:
    """Set each draft's VAT in its issuer's national currency at the ECB rate of
    ``issue_date`` (art. 230 Directive 2006/112/EC; ``fx.national_vat``). A draft with no
    recent enough rate stays a draft, reported in ``problems``; the others go on."""
    kept = []
    cache: dict[Any, Any] = {}
    for invoice in drafts:
        issuer = invoice.issuer
        try:
            vat = national_vat(
                issuer_country=issuer.country,
                currency=invoice.currency,
                tax_total=invoice.tax_total,
                issue_date=issue_date,
                rounding=issuer.rounding,
                cache=cache,
            )
        except FxRateMissing as exc:
            if problems is not None:
                problems[invoice.pk] = exc.message
            continue
        invoice.tax_currency = vat.currency if vat else ""
        invoice.tax_fx_rate = vat.rate if vat else None
        invoice.tax_fx_date = vat.day if vat else None
        invoice.tax_total_national = vat.amount if vat else None
        kept.append(invoice)
    return kept


FINALIZED_FIELDS = [
    *_legal_snapshot_fields(),
    "tax_currency",
    "tax_fx_rate",
    "tax_fx_date",
    "tax_total_national",
    "subtotal",
    "credits",
    "tax_total",
    "total",
    "number_year",
    "sequence",
    "number",
    "issue_date",
    "due_date",
    "status",
    "finalized_at",
]


def _finalize_drafts(
    drafts: Sequence[Invoice],
    *,
    as_of: datetime,
    user: Any,
    problems: dict[int, str] | None = None,
) -> None:
    """Finalize ``drafts`` (locked, in numbering order) inside the caller's transaction."""
    org_ids = {invoice.org_id for invoice in drafts}
    orgs = Org.objects.in_bulk(org_ids)
    issuers = Issuer.objects.in_bulk({invoice.issuer_id for invoice in drafts})
    drafted_taxes: dict[int, InvoiceTax] = {}
    for tax_line in InvoiceTax.objects.filter(
        org_id__in=org_ids, invoice_id__in=[invoice.pk for invoice in drafts]
    ):
        drafted_taxes.setdefault(tax_line.invoice_id, tax_line)
    retaxed: list[InvoiceTax] = []
    for invoice in drafts:
        invoice.issuer = issuers[invoice.issuer_id]
        for name, value in _legal_snapshot(orgs[invoice.org_id], invoice.issuer).items():
            setattr(invoice, name, value)
        # Tax again: the customer's country or VAT id may have changed since the draft.
        tax = _totals(invoice, subtotal=invoice.subtotal, credits=invoice.credits)
        drafted = drafted_taxes.get(invoice.pk)
        if drafted is None or (drafted.rate, drafted.basis, drafted.amount, drafted.reason) != (
            tax.rate,
            tax.basis,
            tax.amount,
            tax.reason,
        ):
            retaxed.append(tax)
    if retaxed:
        # While the invoices are still drafts: the triggers freeze a finalized one's taxes.
        InvoiceTax.objects.filter(
            org_id__in=org_ids, invoice_id__in=[tax.invoice_id for tax in retaxed]
        ).delete()
        InvoiceTax.objects.bulk_create(retaxed)
    issue_date = as_of.date()
    drafts = _freeze_national_vat(list(drafts), issue_date=issue_date, problems=problems)
    if not drafts:
        return
    year, kind = issue_date.year, DocumentCounter.Kind.INVOICE
    blocks = Counter((invoice.issuer_id, year) for invoice in drafts)
    sequences = reserve_numbers(blocks=blocks, kind=kind)
    for invoice in drafts:
        sequence = sequences[(invoice.issuer_id, year)]
        sequences[(invoice.issuer_id, year)] += 1
        invoice.number_year = year
        invoice.sequence = sequence
        invoice.number = format_number(
            issuer=invoice.issuer, year=year, sequence=sequence, kind=kind
        )
        invoice.issue_date = issue_date
        invoice.due_date = issue_date + timedelta(days=invoice.payment_terms_days)
        invoice.status = Status.FINALIZED
        invoice.finalized_at = as_of
    # One UPDATE for the chunk; the trigger lets a draft become finalized with its numbers.
    Invoice.objects.bulk_update(drafts, FINALIZED_FIELDS)
    AuditEntry.objects.bulk_create(
        _audit_entry(
            invoice,
            "finalized",
            {"number": invoice.number, "total": invoice.total},
            user=user,
            org=orgs[invoice.org_id],
        )
        for invoice in drafts
    )
    _after_finalize(drafts)


def _after_finalize(invoices: Sequence[Invoice]) -> None:
    from ..stripe.client import stripe_enabled

    if stripe_enabled():
        from ..stripe.tasks import sync_invoice

        for invoice in invoices:
            # A named function: robust on_commit logs a failure by the callback's name.
            def enqueue_sync(pk: int = invoice.pk) -> None:
                sync_invoice.delay(pk)

            transaction.on_commit(enqueue_sync, robust=True)


def invoices_to_finalize(
    *, org: Org | None = None, period: tuple[int, int] | None = None
) -> list[int]:
    query = Invoice.objects.filter(status=Status.DRAFT)
    if org is not None:
        query = query.filter(org=org)
    if period is not None:
        year, month = period
        query = query.filter(period_start__year=year, period_start__month=month)
    return list(query.order_by("org_id", "period_start", "pk").values_list("pk", flat=True))


def invoices_finalize(
    *, org: Org | None = None, period: tuple[int, int] | None = None, as_of: datetime | None = None
) -> list[int]:
    """Finalize every draft (of ``org``, of the period starting in (year, month)),
    ``CHUNK`` to a transaction (``invoices_finalize_many``), numbered in (org, period start)
    order. Returns their ids."""
    ids = invoices_to_finalize(org=org, period=period)
    for chunk in chunks(ids, CHUNK):
        invoices_finalize_many(invoice_ids=chunk, as_of=as_of)
    return ids


# --- status --------------------------------------------------------------------------------


def _audit_entry(
    invoice: Invoice, what: str, changes: dict[str, Any], *, user: Any, org: Org
) -> AuditEntry:
    """The (unsaved) entry ``audit_record`` would write, for ``bulk_create`` in a batch."""
    actor = "finalize_invoices"
    if user is not None and getattr(user, "is_authenticated", False):
        actor = user.get_username()
    else:
        user = None
    return AuditEntry(
        action=f"invoice.{what}",
        object_type="invoice",
        object_key=invoice.number or f"draft-{invoice.pk}",
        # JSON-safe as audit_record stores it: decimals and dates as their exact strings.
        changes=json.loads(json.dumps(changes, cls=DjangoJSONEncoder, default=str)),
        actor=actor[:150],
        user=user,
        org=org,
    )


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
        if invoice.status == status or status not in FORWARD[invoice.status]:
            return invoice, False
        if invoice.is_draft:
            return invoice, False
        invoice.status = status
        invoice.status_reason = reason
        invoice.status_changed_at = at or timezone.now()
        invoice.save(update_fields=["status", "status_reason", "status_changed_at"])
        from audit.services import audit_record

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
    return _finance_move(invoice_id=invoice_id, status=Status.VOID, reason=reason, user=user)


def invoice_mark_uncollectible(*, invoice_id: int, reason: str, user: Any = None) -> Invoice:
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
        from ..stripe.client import stripe_enabled

        if stripe_enabled():
            from ..stripe.tasks import sync_invoice

            transaction.on_commit(lambda: sync_invoice.delay(invoice_id), robust=True)
    return invoice


# --- credit notes --------------------------------------------------------------------------


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
    left of it, taxed at the invoice's rate."""
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
            credits, note_taxes = (
                invoice.credits,
                [(t.rate, t.basis, t.amount, t.reason, t.mention) for t in taxes],
            )
        else:
            credits = ZERO
            note_taxes = [
                (
                    t.rate,
                    subtotal,
                    round_amount(subtotal * t.rate / 100, invoice.currency, issuer.rounding),
                    t.reason,
                    t.mention,
                )
                for t in taxes
            ]
        tax_total = sum((t[2] for t in note_taxes), ZERO)
        total = subtotal - credits + tax_total
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
            credits=credits,
            tax_total=tax_total,
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
                rate=rate,
                basis=basis,
                amount=amount,
                reason=tax_reason,
                mention=mention,
            )
            for rate, basis, amount, tax_reason, mention in note_taxes
        )
        from audit.services import audit_record

        audit_record(
            action="credit_note.issued",
            object_type="credit_note",
            object_key=note.number,
            changes={"invoice": invoice.number, "total": total, "full": full, "reason": reason},
            user=user,
            actor="finance",
            org=Org.objects.get(pk=invoice.org_id),
        )
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


def month_of(value: str) -> tuple[int, int]:
    """``YYYY-MM`` → (year, month); ValueError otherwise."""
    day = date.fromisoformat(f"{value}-01")
    return day.year, day.month


__all__ = [
    "CloseReport",
    "CreditRequest",
    "InvoicingError",
    "credit_note_issue",
    "invoice_draft",
    "invoice_finalize",
    "invoice_mark_uncollectible",
    "invoice_status_advance",
    "invoice_void",
    "invoices_finalize",
    "invoices_finalize_many",
    "lock_invoice",
    "lock_invoices",
    "lock_period",
    "lock_periods",
    "month_of",
    "periods_close",
]
