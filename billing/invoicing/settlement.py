"""Final adjustment invoices: late usage after a contract's last invoiced period (SPEC §3
"Unbilled usage", §6 step 5).

Late usage of an invoiced period is billed as ``adjustment`` lines on the org's next invoice
(same issuer and currency). When no next invoice will come — every contract of that org,
issuer and currency has ended and all their periods are invoiced — ``close_periods`` drafts a
final adjustment invoice instead: hosted by the last invoiced period, holding only the
adjustment lines of that period and of any earlier one with late usage. It waits until the
latest late change is a grace window (``TESSERA_GRACE_DAYS``) old, so that usage arriving
together is billed together. Idempotent: the periods it re-rates are recorded
(``LateUsageCheck``), so a second run finds nothing left to adjust.
"""

from datetime import UTC, datetime
from functools import partial

from django.db.models import Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest

from metering.models import QuarantinedWork
from metering.quarantine import attempt
from tenancy.models import Org

from ..lock_objects import lock_period
from ..models import BillingPeriod, Contract
from .adjustments import periods_with_late_usage
from .drafting import (
    ZERO,
    CloseReport,
    _adjustment_lines,
    _new_invoice,
    apply_totals,
    grace,
    invoice_totals,
)
from .models import Invoice, InvoiceLine, InvoiceTax, LateUsageCheck

PeriodStatus = BillingPeriod.Status


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
