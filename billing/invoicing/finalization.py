"""Finalizing draft invoices: gapless numbers, frozen legal details, issue and due dates,
the VAT in national currency at the ECB rate of the issue date (SPEC §6, §9; EU invoicing
law, art. 230 Directive 2006/112/EC).

Locks: the invoices in one statement in pk order, then the document counters
(``reserve_numbers``), so batches and single finalizations wait for each other and never
deadlock.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import audit_entry
from tenancy.models import Org

from ..models import Issuer
from ..stripe.tasks import invoices_sync_on_commit
from .drafting import apply_totals, chunks, invoice_totals, legal_snapshot, legal_snapshot_fields
from .errors import InvoicingError
from .events import invoice_finalized_emit
from .fx import FxRateMissing, national_vat
from .lock_objects import lock_invoices
from .models import DocumentCounter, Invoice, InvoiceTax
from .numbering import format_number, reserve_numbers

CHUNK = 200  # invoices per transaction in the finalize run
Status = Invoice.Status
FINALIZED_FIELDS = [
    *legal_snapshot_fields(),
    "tax_currency",
    "tax_fx_rate",
    "tax_fx_date",
    "tax_total_national",
    "subtotal",
    "credits",
    "balance_carried",
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


def invoices_finalize(
    *,
    invoice_ids: Sequence[int] | None = None,
    org: Org | None = None,
    period: tuple[int, int] | None = None,
    as_of: datetime | None = None,
    user: Any = None,
    problems: dict[int, str] | None = None,
) -> list[int]:
    """Finalize invoices: number each draft (gapless per issuer and year), freeze the org's
    and issuer's legal details and the VAT in national currency, set issue and due dates
    (SPEC §6, §9).

    ``invoice_ids``: these invoices, numbered in that order (one already finalized is left as
    it is; a missing one raises ``Invoice.DoesNotExist`` and finalizes nothing of its chunk).
    Otherwise every draft (of ``org``, of the period starting in (year, month)), in (org,
    period start) order. ``CHUNK`` invoices to a transaction, each chunk in a handful of
    queries, from one block of numbers per (issuer, year) taken from the locked counter row:
    the numbers are those one-by-one finalization in this order would give, and a rollback
    gives the whole block back. Idempotent. Returns the ids, in order
    (``invoices_finalize_counted`` also says which of them this call finalized).

    A draft whose VAT must also be stated in its issuer's national currency and that has no
    ECB rate loaded for its issue date stays a draft, and the others go on: its reason is put
    in ``problems`` (by invoice id) when given, else ``InvoicingError("fx_rate_missing")`` is
    raised once every chunk is done."""
    return invoices_finalize_counted(
        invoice_ids=invoice_ids, org=org, period=period, as_of=as_of, user=user, problems=problems
    ).ids


@dataclass(frozen=True)
class FinalizeResult:
    ids: list[int]  # every invoice looked at, in numbering order
    finalized_ids: list[int]  # those this call finalized (drafts under its lock)


def invoices_finalize_counted(
    *,
    invoice_ids: Sequence[int] | None = None,
    org: Org | None = None,
    period: tuple[int, int] | None = None,
    as_of: datetime | None = None,
    user: Any = None,
    problems: dict[int, str] | None = None,
) -> FinalizeResult:
    """``invoices_finalize``, counting what was done: a draft that another run finalized
    first (found finalized under the lock), or that stays a draft for want of an ECB rate, is
    not counted (issue 15: honest counts)."""
    as_of = (as_of or timezone.now()).astimezone(UTC)
    ids = (
        list(invoice_ids)
        if invoice_ids is not None
        else invoices_to_finalize(org=org, period=period)
    )
    left: dict[int, str] = {} if problems is None else problems
    finalized: list[int] = []
    for chunk in chunks(ids, CHUNK):
        finalized += _finalize_chunk(chunk, as_of=as_of, user=user, problems=left)
    if problems is None and left:
        raise InvoicingError("fx_rate_missing", _stay_drafts(left))
    return FinalizeResult(ids=ids, finalized_ids=finalized)


def _stay_drafts(problems: dict[int, str]) -> str:
    """One sentence per distinct reason, naming the invoices it holds back (a whole run of
    drafts short of the same rate reads as one line, not one line per invoice)."""
    by_reason: dict[str, list[int]] = {}
    for invoice_id, reason in problems.items():
        by_reason.setdefault(reason, []).append(invoice_id)
    return " ".join(
        f"{reason.rstrip('.')} "
        f"({'1 invoice stays a draft' if len(ids) == 1 else f'{len(ids)} invoices stay drafts'}:"
        f" id {_some(ids)})."
        for reason, ids in by_reason.items()
    )


def _some(ids: list[int], shown: int = 10) -> str:
    head = ", ".join(str(i) for i in ids[:shown])
    return head if len(ids) <= shown else f"{head} and {len(ids) - shown} more"


def invoices_to_finalize(
    *, org: Org | None = None, period: tuple[int, int] | None = None
) -> list[int]:
    """Ids of the drafts (of ``org``, of the period starting in (year, month)), in the order
    they are numbered: (org, period start)."""
    query = Invoice.objects.filter(status=Status.DRAFT)
    if org is not None:
        query = query.filter(org=org)
    if period is not None:
        year, month = period
        query = query.filter(period_start__year=year, period_start__month=month)
    return list(query.order_by("org_id", "period_start", "pk").values_list("pk", flat=True))


@transaction.atomic
def _finalize_chunk(
    invoice_ids: Sequence[int], *, as_of: datetime, user: Any, problems: dict[int, str]
) -> list[int]:
    """Finalize the drafts among ``invoice_ids`` in one transaction. Locks: the invoices in
    one statement in pk order, then the counters (``reserve_numbers``), so chunks and single
    finalizations wait for each other and never deadlock."""
    invoices = lock_invoices(invoice_ids=invoice_ids)
    missing = [pk for pk in invoice_ids if pk not in invoices]
    if missing:
        raise Invoice.DoesNotExist(f"No invoice {missing[0]}.")
    drafts = [invoices[pk] for pk in dict.fromkeys(invoice_ids) if invoices[pk].is_draft]
    if drafts:
        return _finalize_drafts(drafts, as_of=as_of, user=user, problems=problems)
    return []


def _freeze_national_vat(
    drafts: list[Invoice], *, issue_date: date, problems: dict[int, str]
) -> list[Invoice]:
    """Set each draft's VAT in its issuer's national currency at the ECB rate of
    ``issue_date`` (art. 230 Directive 2006/112/EC; ``fx.national_vat``), reading each rate
    once for the chunk. A draft with no recent enough rate stays a draft, reported in
    ``problems``; the others go on."""
    kept = []
    cache: dict[Any, Any] = {}
    for invoice in drafts:
        try:
            vat = national_vat(
                issuer_country=invoice.issuer.country,
                currency=invoice.currency,
                tax_total=invoice.tax_total,
                issue_date=issue_date,
                rounding=invoice.issuer.rounding,
                cache=cache,
            )
        except FxRateMissing as exc:
            problems[invoice.pk] = exc.message
            continue
        invoice.tax_currency = vat.currency if vat else ""
        invoice.tax_fx_rate = vat.rate if vat else None
        invoice.tax_fx_date = vat.day if vat else None
        invoice.tax_total_national = vat.amount if vat else None
        kept.append(invoice)
    return kept


def _finalize_drafts(
    drafts: Sequence[Invoice], *, as_of: datetime, user: Any, problems: dict[int, str]
) -> list[int]:
    """Finalize ``drafts`` (locked, in numbering order) inside the caller's transaction.
    Returns the ids finalized (a draft left for a missing ECB rate is not among them)."""
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
        for name, value in legal_snapshot(orgs[invoice.org_id], invoice.issuer).items():
            setattr(invoice, name, value)
        # Tax again: the customer's country or VAT id may have changed since the draft.
        totals = invoice_totals(invoice, subtotal=invoice.subtotal, credits=invoice.credits)
        tax = apply_totals(invoice, totals)
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
        return []
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
    _update_rows(drafts, FINALIZED_FIELDS)
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
    _settle_zero_and_negative(drafts, as_of=as_of, user=user, orgs=orgs)
    invoices_sync_on_commit(invoice_ids=[invoice.pk for invoice in drafts])
    invoice_finalized_emit(invoices=drafts, org_slugs={pk: org.slug for pk, org in orgs.items()})
    return [invoice.pk for invoice in drafts]


# Parameters per UPDATE statement: SQLite allows 32,766; PostgreSQL 65,535.
MAX_PARAMETERS = 30_000


def _update_rows(invoices: Sequence[Invoice], fields: Sequence[str]) -> None:
    """Write ``fields`` of each of ``invoices`` (saved rows): what ``bulk_update`` does, in one
    ``WITH v AS (VALUES …) UPDATE … FROM v`` per batch. ``bulk_update`` builds a ``CASE WHEN``
    per field and row as Django expressions, which cost ~2 ms of Python per invoice at 26
    fields (issue 18, profiled with ``bench/invoicing.py --profile``); here each value is only
    prepared by its field, as a save would. ``UPDATE … FROM`` is PostgreSQL's, and SQLite's
    since 3.33."""
    if not invoices:
        return
    meta = Invoice._meta
    pk = meta.pk
    assert pk is not None
    columns: list[Field[Any, Any]] = []
    for name in fields:
        field = meta.get_field(name)
        assert isinstance(field, Field), name  # concrete columns, not relations' reverse sides
        columns.append(field)
    quote = connection.ops.quote_name
    postgres = connection.vendor == "postgresql"

    def cast(db_type: str | None) -> str:
        # PostgreSQL types a VALUES column from its literals: each placeholder says its type.
        return f"%s::{db_type}" if postgres else "%s"

    types = [pk.db_type(connection), *(field.db_type(connection) for field in columns)]
    row = "(" + ", ".join(cast(db_type) for db_type in types) + ")"
    names = ", ".join(quote(name) for name in [pk.column, *(field.column for field in columns)])
    table = quote(meta.db_table)
    assignments = ", ".join(f"{quote(field.column)} = v.{quote(field.column)}" for field in columns)
    per_batch = max(1, MAX_PARAMETERS // (len(columns) + 1))
    with connection.cursor() as cursor:
        for start in range(0, len(invoices), per_batch):
            batch = invoices[start : start + per_batch]
            params: list[Any] = []
            for invoice in batch:
                params.append(invoice.pk)
                params += [
                    field.get_db_prep_save(getattr(invoice, field.attname), connection)
                    for field in columns
                ]
            cursor.execute(
                f"WITH v ({names}) AS (VALUES {', '.join([row] * len(batch))}) "
                f"UPDATE {table} SET {assignments} FROM v "
                f"WHERE {table}.{quote(pk.column)} = v.{quote(pk.column)}",
                params,
            )
            updated = cursor.rowcount
            if updated < 0:  # sqlite3 counts no statement that begins with WITH
                cursor.execute("SELECT changes()")
                updated = cursor.fetchone()[0]
            if updated != len(batch):
                raise Invoice.DoesNotExist(f"Updated {updated} of {len(batch)} invoices.")


def _settle_zero_and_negative(
    drafts: Sequence[Invoice], *, as_of: datetime, user: Any, orgs: dict[int, Org]
) -> None:
    """SPEC §3: the remainder of a negative period becomes a balance credit on the org (drawn
    first by the next invoice); an invoice with nothing to pay (total 0.00) is paid at once,
    as Stripe marks a zero invoice paid at finalization."""
    from ..rating.credits import balance_credit_create

    for invoice in drafts:
        grant = balance_credit_create(invoice=invoice)
        if grant is not None:
            changes = {"balance": invoice.balance_carried, "grant": grant.key}
            _audit_entry(invoice, "balance_carried", changes, user=user,
                         org=orgs[invoice.org_id]).save(force_insert=True)  # fmt: skip
    zero = [invoice for invoice in drafts if invoice.total == 0]
    if zero:
        reason = "Nothing to pay (total 0.00)."
        Invoice.objects.filter(pk__in=[invoice.pk for invoice in zero]).update(
            status=Status.PAID, status_reason=reason, status_changed_at=as_of
        )
        for invoice in zero:
            invoice.status, invoice.status_reason, invoice.status_changed_at = (
                Status.PAID, reason, as_of)  # fmt: skip


def _audit_entry(
    invoice: Invoice, what: str, changes: dict[str, Any], *, user: Any, org: Org
) -> AuditEntry:
    """The (unsaved) entry of ``invoice``'s ``what`` for ``bulk_create`` in a batch."""
    return audit_entry(
        action=f"invoice.{what}",
        object_type="invoice",
        object_key=invoice.number or f"draft-{invoice.pk}",
        changes=changes,
        actor="finalize_invoices",
        user=user,
        org=org,
    )
