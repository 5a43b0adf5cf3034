"""Invoicing reads. Every read of tenant data names the orgs it may return."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Prefetch, QuerySet

from tenancy.models import Org

from .models import CreditNote, Invoice, InvoiceLine


def invoices_for(
    *,
    orgs: QuerySet[Org],
    period: tuple[int, int] | None = None,
    issuer: str | None = None,
    status: list[str] | None = None,
    include_drafts: bool = True,
) -> QuerySet[Invoice]:
    """Invoices of ``orgs`` (what the caller may see), filtered by the month their period
    starts in, the issuer's key and statuses; lines, taxes and the period of each adjustment
    prefetched (for the export and the PDF)."""
    query = Invoice.objects.filter(org__in=orgs)
    if period is not None:
        query = query.filter(period_start__year=period[0], period_start__month=period[1])
    if issuer:
        query = query.filter(issuer__key=issuer)
    if status:
        query = query.filter(status__in=status)
    if not include_drafts:
        query = query.exclude(status=Invoice.Status.DRAFT)
    return (
        query.select_related("org", "issuer")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=InvoiceLine.objects.select_related("product", "adjusts_period"),
            ),
            "taxes",
        )
        .order_by("issuer_id", "number_year", "sequence", "period_start", "org_id", "pk")
    )


def invoice_get(*, orgs: QuerySet[Org], invoice_id: int) -> Invoice | None:
    return invoices_for(orgs=orgs).filter(pk=invoice_id).first()


def credit_notes_for(
    *,
    orgs: QuerySet[Org],
    period: tuple[int, int] | None = None,
    issuer: str | None = None,
) -> QuerySet[CreditNote]:
    """Credit notes of ``orgs``; ``period`` is the month they were issued in."""
    query = CreditNote.objects.filter(org__in=orgs)
    if period is not None:
        query = query.filter(issue_date__year=period[0], issue_date__month=period[1])
    if issuer:
        query = query.filter(issuer__key=issuer)
    return (
        query.select_related("org", "issuer", "invoice")
        .prefetch_related("lines__product", "taxes")
        .order_by("issuer_id", "number_year", "sequence")
    )


@dataclass(frozen=True)
class OrgDocument:
    """An issued invoice or credit note, as a customer's list shows it."""

    number: str
    kind: str
    period_label: str
    status: str
    total: Decimal
    currency: str
    pdf_url: str | None
    due_date: date | None = None


def org_documents(*, org: Org) -> list[OrgDocument]:
    """The org's issued invoices (drafts are finance's business) and credit notes, newest first."""
    invoices = Invoice.objects.filter(org=org).exclude(status=Invoice.Status.DRAFT)
    documents = [
        OrgDocument(
            number=i.number,
            kind="invoice",
            period_label=f"{i.period_start:%Y-%m-%d} → {i.period_end:%Y-%m-%d}",
            status=i.get_status_display(),
            total=i.total,
            currency=i.currency,
            pdf_url=f"/api/v1/invoices/{i.pk}/pdf",
            due_date=i.due_date,
        )
        for i in invoices.order_by("-period_start", "-pk")
    ]
    notes = (
        CreditNote.objects.filter(org=org).select_related("invoice").order_by("-issue_date", "-pk")
    )
    documents += [
        OrgDocument(
            number=n.number,
            kind="credit note",
            period_label=f"against {n.invoice.number}",
            status="issued",
            total=-n.total,
            currency=n.currency,
            pdf_url=None,
        )
        for n in notes
    ]
    return documents
