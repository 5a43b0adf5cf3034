"""Invoicing reads. Every read of tenant data names the orgs it may return."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Prefetch, QuerySet, Sum

from tenancy.models import Org

from ..models import CreditDraw, CreditGrant
from .models import CreditNote, Invoice, InvoiceLine


def invoices_for(
    *,
    orgs: QuerySet[Org],
    period: tuple[int, int] | None = None,
    issuer: str | None = None,
    status: list[str] | None = None,
    include_drafts: bool = True,
    include_void: bool = True,
) -> QuerySet[Invoice]:
    """Invoices of ``orgs`` (what the caller may see), filtered by the month their period
    starts in, the issuer's key and statuses; lines, taxes and the period of each adjustment
    prefetched (for the export and the PDF). Exports pass ``include_void=False`` unless void
    is asked for: a void invoice is no longer payable (as Stripe's and Orb's exports)."""
    query = Invoice.objects.filter(org__in=orgs)
    if period is not None:
        query = query.filter(period_start__year=period[0], period_start__month=period[1])
    if issuer:
        query = query.filter(issuer__key=issuer)
    if status:
        query = query.filter(status__in=status)
    if not include_drafts:
        query = query.exclude(status=Invoice.Status.DRAFT)
    if not include_void:
        query = query.exclude(status=Invoice.Status.VOID)
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
    pdf_url: str
    facturx_url: str  # "" when it has none (a void invoice)
    xrechnung_url: str
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
            # A void invoice is no longer payable: no e-invoice, only its PDF marked VOID.
            facturx_url="" if void else f"/api/v1/invoices/{i.pk}/facturx",
            xrechnung_url="" if void else f"/api/v1/invoices/{i.pk}/xrechnung",
            due_date=i.due_date,
        )
        for i in invoices.order_by("-period_start", "-pk")
        for void in [i.status == Invoice.Status.VOID]
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
            pdf_url=f"/api/v1/credit-notes/{n.pk}/pdf",
            facturx_url=f"/api/v1/credit-notes/{n.pk}/facturx",
            xrechnung_url=f"/api/v1/credit-notes/{n.pk}/xrechnung",
        )
        for n in notes
    ]
    return documents


@dataclass(frozen=True)
class CreditPart:
    """The credit one grant gave an invoice."""

    grant: str  # the grant's key
    label: str  # as the invoice names it: "Credit promo-2026", "Account balance (…)"
    amount: Decimal  # the invoice's currency, > 0


def invoice_credit_parts(*, org: Org, invoice: Invoice) -> list[CreditPart]:
    """The credits ``invoice`` applied, named per grant (issue 14; SPEC §6 step 7), in the
    order grants are drawn. Read from its period's credit ledger (``CreditDraw``, append
    only): the draws made before the draft was written (what drafting summed), else, for a
    draft a review re-totalled, all of them. A void's give-backs and a reissue's draws come
    after the invoice, so it keeps naming the grants it applied. Empty when neither adds up
    to ``invoice.credits`` (then the invoice shows one "Credits applied" total)."""
    if not invoice.credits:
        return []
    draws = CreditDraw.objects.filter(org=org, period_id=invoice.period_id)
    for ledger in (draws.filter(created_at__lte=invoice.created_at), draws):
        net = dict(
            ledger.values("grant_id")
            .annotate(total=Sum("amount"))
            .order_by()
            .values_list("grant_id", "total")
        )
        grants = CreditGrant.objects.filter(org=org, pk__in=[pk for pk, v in net.items() if v])
        parts = [
            CreditPart(grant.key, _credit_label(grant), net[grant.pk])
            for grant in grants.select_related("from_invoice")  # Meta ordering: drawn first
        ]
        if parts and sum((part.amount for part in parts), Decimal(0)) == invoice.credits:
            return parts
    return []


def _credit_label(grant: CreditGrant) -> str:
    if grant.source == "balance":
        origin = grant.from_invoice.number if grant.from_invoice else grant.key
        return f"Account balance (carried from {origin})"
    return f"Credit {grant.key}"
