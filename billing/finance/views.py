"""The finance console: close periods, review and finalize drafts, correct invoices, follow
Stripe, export. Every page and action is for the finance role."""

import io
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.selectors import audit_entries
from audit.services import audit_record
from core.timeparse import month_of
from metering.models import QuarantinedWork
from metering.quarantine import quarantined_open
from tenancy.models import Org, StaffRole
from web.access import role_required

from ..invoicing import export
from ..invoicing.credit_notes import CreditRequest, credit_note_issue
from ..invoicing.drafting import periods_close, periods_to_close, stale_reason
from ..invoicing.einvoice import NoEInvoice, document_file
from ..invoicing.errors import InvoicingError
from ..invoicing.finalization import invoices_finalize, invoices_finalize_counted
from ..invoicing.models import CreditNote, Invoice, InvoicePayment, StripeInvoiceSync
from ..invoicing.pdf import discount_line, render_invoice_pdf
from ..invoicing.pdf import price as price_text
from ..invoicing.pdf import quantity as quantity_text
from ..invoicing.receivables import (
    BUCKETS,
    invoice_outstanding,
    invoice_payment_record,
    payments_needing_attention,
    payments_of,
    receivables_aged,
    receivables_open,
)
from ..invoicing.review import (
    drafts_flagged,
    invoice_add_one_off,
    invoice_discard,
    invoice_rerate,
    invoice_variance,
    variance_threshold,
)
from ..invoicing.selectors import credit_notes_for, invoice_get, invoices_for
from ..invoicing.status import invoice_mark_uncollectible, invoice_reissue, invoice_void
from ..models import BillingPeriod, Issuer, RatedCharge
from ..money import money_text
from ..rating.periods import midnight
from ..rating.unbilled import REASONS, default_window, unbilled_summary, unbilled_usage

finance_only = role_required(StaffRole.FINANCE)
ALL = Org.objects.all


def _month(request: HttpRequest) -> tuple[int, int] | None:
    raw = request.GET.get("period") or ""
    if not raw:
        return None
    try:
        return month_of(raw)
    except (ValueError, InvoicingError):
        messages.error(request, f"{raw!r} is not a month (YYYY-MM).")
        return None


@finance_only
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    ready_ids = periods_to_close(as_of=now)
    ready = list(
        BillingPeriod.objects.filter(pk__in=ready_ids[:200]).select_related("org", "contract")
    )
    syncs = StripeInvoiceSync.objects.select_related("invoice", "org")
    context = {
        "ready": [{"period": p, "blocked": stale_reason(p)} for p in ready],
        "ready_count": len(ready_ids),
        "drafts": Invoice.objects.filter(status=Invoice.Status.DRAFT).count(),
        "sync_counts": {
            state: syncs.filter(state=state).count() for state in StripeInvoiceSync.State.values
        },
        "sync_failures": syncs.filter(state=StripeInvoiceSync.State.FAILED).order_by("-updated_at")[
            :20
        ],
        "issuers": Issuer.objects.all(),
        "export_month": _last_closed_month(now),
        "attention": payments_needing_attention().order_by("-created_at")[:20],
        "overdue": Invoice.objects.filter(status=Invoice.Status.OVERDUE).count(),
        "unbilled": unbilled_summary(),
        "quarantined": quarantined_open(orgs=ALL()).count(),
    }
    return render(request, "finance/dashboard.html", context)


def _last_closed_month(now: datetime) -> str:
    """The export form's default: the month of the latest issued invoice's period, else the
    month before this one (the current month has nothing to export yet)."""
    latest = (
        Invoice.objects.exclude(status=Invoice.Status.DRAFT)
        .order_by("-period_start")
        .values_list("period_start", flat=True)
        .first()
    )
    if latest is not None:
        return latest.strftime("%Y-%m")
    first = now.replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


REASON_HELP = {
    "no_matching_product": "No product of the meter matches these dimension values: add a "
    "product (or fix the collector's dimensions).",
    "no_contract": "No contract of the org covers these hours: add or extend a contract.",
    "no_price": "A product matches, but the contract's rate card has no price for it (and no "
    "custom price or reservation): add a price.",
}


def _day(request: HttpRequest, name: str) -> date | None:
    raw = request.GET.get(name) or ""
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        messages.error(request, f"{name}: {raw!r} is not a date (YYYY-MM-DD).")
        return None


@finance_only
def unbilled(request: HttpRequest) -> HttpResponse:
    """Accepted usage that no invoice line bills, per org, meter, dimensions and reason."""
    start, end = default_window()
    first, last = _day(request, "start"), _day(request, "end")
    start = midnight(first) if first else start
    end = midnight(last) if last else end
    orgs = ALL()
    slug = request.GET.get("org") or ""
    if slug:
        orgs = orgs.filter(slug=slug)
    rows = unbilled_usage(orgs=orgs, start=start, end=end) if end > start else []
    return render(
        request,
        "finance/unbilled.html",
        {
            "rows": rows,
            "start": start,
            "end": end,
            "org": slug,
            "reasons": [(reason, REASON_HELP[reason]) for reason in REASONS],
        },
    )


@finance_only
def quarantine(request: HttpRequest) -> HttpResponse:
    """Batch work set aside after a failure (SPEC §8), open first, then recently resolved."""
    return render(
        request,
        "finance/quarantine.html",
        {
            "open": quarantined_open(orgs=ALL())[:500],
            "resolved": QuarantinedWork.objects.filter(resolved_at__isnull=False)
            .select_related("org")
            .order_by("-resolved_at")[:50],
        },
    )


@require_POST
@finance_only
def close_periods(request: HttpRequest) -> HttpResponse:
    report = periods_close(as_of=timezone.now())
    audit_record(
        action="periods.closed",
        object_type="close_run",
        object_key=timezone.now().strftime("%Y-%m-%dT%H:%M"),
        changes={"drafted": len(report.drafted_ids), "already": report.already,
                 "skipped": len(report.skipped)},
        user=request.user,
    )  # fmt: skip
    messages.success(
        request,
        f"Drafted {len(report.drafted_ids)} invoice(s); {report.already} already invoiced; "
        f"{len(report.skipped)} skipped (see the reasons below).",
    )
    for period, reason in report.skipped[:10]:
        messages.warning(request, f"{period.org.slug} {period.start:%Y-%m-%d}: {reason}")
    for org_slug, error in report.failed[:10]:
        messages.error(request, f"{org_slug}: close failed and is quarantined: {error}")
    return HttpResponseRedirect("/finance/")


@finance_only
def invoice_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or ""
    statuses = [status] if status in Invoice.Status.values else None
    invoices = list(
        invoices_for(
            orgs=ALL(),
            period=_month(request),
            issuer=request.GET.get("issuer") or None,
            status=statuses,
        )[:500]
    )
    drafts = [i.pk for i in invoices if i.is_draft][:100]
    return render(
        request,
        "finance/invoices.html",
        {
            "invoices": invoices,
            "flagged": drafts_flagged(invoice_ids=drafts),
            "paid": payments_of(invoice_ids=[i.pk for i in invoices]),
            "statuses": Invoice.Status.choices,
            "status": status,
            "issuers": Issuer.objects.all(),
            "issuer": request.GET.get("issuer") or "",
            "period": request.GET.get("period") or "",
        },
    )


@require_POST
@finance_only
def finalize_selected(request: HttpRequest) -> HttpResponse:
    ids = [int(i) for i in request.POST.getlist("invoice") if i.isdigit()]
    if not ids:
        messages.error(request, "Select the drafts to finalize.")
        return HttpResponseRedirect("/finance/invoices/?status=draft")
    drafts = list(
        Invoice.objects.filter(pk__in=ids, status=Invoice.Status.DRAFT)
        .order_by("org_id", "period_start", "pk")
        .values_list("pk", flat=True)
    )
    problems: dict[int, str] = {}
    result = invoices_finalize_counted(invoice_ids=drafts, user=request.user, problems=problems)
    numbers = list(Invoice.objects.filter(pk__in=result.finalized_ids).order_by(
        "issuer_id", "number_year", "sequence").values_list("number", flat=True))  # fmt: skip
    messages.success(request, f"Finalized {len(numbers)}: {', '.join(numbers)}")
    for invoice_id, reason in problems.items():
        messages.error(request, f"Draft #{invoice_id} left as a draft: {reason}")
    return HttpResponseRedirect(request.POST.get("next") or "/finance/invoices/?status=draft")


def _invoice(invoice_id: int) -> Invoice:
    invoice = invoice_get(orgs=ALL(), invoice_id=invoice_id)
    if invoice is None:
        raise Http404("No such invoice.")
    return invoice


@finance_only
def invoice_detail(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = _invoice(invoice_id)
    charges = RatedCharge.objects.filter(period_id=invoice.period_id).select_related("product")
    behind = {(c.product_id, c.kind, c.line): c for c in charges}
    # Adjustment lines come from a re-rating of another period, not from this one's charges.
    # Quantities and prices read as on the PDF; a discounted line states its list price.
    lines = [
        {
            "line": line,
            "quantity": quantity_text(line.quantity),
            "unit_price": price_text(line.unit_price),
            "discount": discount_line(line.list_unit_price, line.unit_price),
            "charges": [
                {
                    "quantity": quantity_text(c.quantity),
                    "unit_price": price_text(c.unit_price),
                    "amount": c.amount,
                }
                for c in [behind.get((line.product_id, line.charge_kind, line.charge_line))]
                if c is not None and line.adjusts_period_id is None
            ],  # fmt: skip
        }
        for line in invoice.lines.all()
    ]
    notes = credit_notes_for(orgs=ALL()).filter(invoice=invoice)
    outstanding = None if invoice.is_draft else invoice_outstanding(invoice=invoice)
    cur = invoice.currency
    previous, variance = invoice_variance(invoice=invoice) if invoice.is_draft else (None, [])
    return render(
        request,
        "finance/invoice.html",
        {
            "invoice": invoice,
            "lines": lines,
            "taxes": invoice.taxes.all(),
            "notes": notes,
            "previous": previous,
            "variance": variance,
            "threshold": variance_threshold(),
            "payments": invoice.payments.order_by("paid_on", "pk"),
            "outstanding": outstanding,
            # What the payment form offers to record: the amount at the currency's minor unit.
            "outstanding_input": None if outstanding is None else money_text(outstanding, cur),
            "replaced_by": Invoice.objects.filter(replaces=invoice).first(),
            "methods": InvoicePayment.Method.choices,
            "today": timezone.now().date().isoformat(),
            "collectible": invoice.status in (Invoice.Status.FINALIZED, Invoice.Status.OVERDUE),
        },
    )


@finance_only
def invoice_pdf(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = _invoice(invoice_id)
    response = HttpResponse(render_invoice_pdf(invoice), content_type="application/pdf")
    name = invoice.number or f"draft-{invoice.pk}"
    response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


@finance_only
def document_download(request: HttpRequest, kind: str, document_id: int, fmt: str) -> HttpResponse:
    """An invoice's e-invoice (``facturx``, ``xrechnung``) or a credit note's ``pdf``,
    ``facturx`` or ``xrechnung``. A draft's e-invoice: back to its page with why; a void
    invoice's: 409 with why (no longer payable; its PDF is marked VOID)."""
    document: Invoice | CreditNote
    if kind == "credit-notes":
        found = credit_notes_for(orgs=ALL()).filter(pk=document_id).first()
        if found is None:
            raise Http404("No such credit note.")
        document = found
    else:
        document = _invoice(document_id)
    try:
        name, content, media_type = document_file(document, fmt)
    except NoEInvoice as exc:
        if exc.code == "invoice_void":
            return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
        messages.error(request, str(exc))
        return HttpResponseRedirect(f"/finance/invoices/{document_id}/")
    response = HttpResponse(content, content_type=media_type)
    disposition = "inline" if fmt == "pdf" else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{name}"'
    return response


@require_POST
@finance_only
def invoice_action(request: HttpRequest, invoice_id: int, action: str) -> HttpResponse:
    reason = (request.POST.get("reason") or "").strip()
    try:
        if action == "finalize":
            invoices_finalize(invoice_ids=[invoice_id], user=request.user)
            number = Invoice.objects.values_list("number", flat=True).get(pk=invoice_id)
            messages.success(request, f"Finalized as {number}.")
        elif action == "void":
            invoice = invoice_void(invoice_id=invoice_id, reason=reason, user=request.user)
            messages.success(
                request, f"Voided {invoice.number}; its credits were given back and its period "
                "reopened: the next close drafts it again (or reissue it now).",
            )  # fmt: skip
        elif action == "reissue":
            draft = invoice_reissue(invoice_id=invoice_id, reason=reason, user=request.user)
            messages.success(request, "Voided and reissued: review the new draft.")
            return HttpResponseRedirect(f"/finance/invoices/{draft.pk}/")
        elif action == "mark-paid":
            payment = invoice_payment_record(
                invoice_id=invoice_id,
                amount=request.POST.get("amount") or None,
                paid_on=_date(request.POST.get("paid_on") or ""),
                reference=request.POST.get("reference") or "",
                method=request.POST.get("method") or InvoicePayment.Method.BANK_TRANSFER,
                user=request.user,
            )
            messages.success(
                request, f"Payment of {payment.amount:,.2f} {payment.currency} recorded."
            )
        elif action == "discard":
            invoice_discard(invoice_id=invoice_id, reason=reason, user=request.user)
            messages.success(request, "Draft discarded; its period is back to closing.")
            return HttpResponseRedirect("/finance/invoices/?status=draft")
        elif action == "rerate":
            draft = invoice_rerate(invoice_id=invoice_id, user=request.user)
            messages.success(request, f"Re-rated: the draft's total is now {draft.total}.")
            return HttpResponseRedirect(f"/finance/invoices/{draft.pk}/")
        elif action == "one-off":
            line = invoice_add_one_off(
                invoice_id=invoice_id,
                amount=request.POST.get("amount") or "",
                description=request.POST.get("description") or "",
                user=request.user,
            )
            messages.success(request, f"One-off line added: {line.description} {line.amount}.")
        elif action == "uncollectible":
            invoice_mark_uncollectible(invoice_id=invoice_id, reason=reason, user=request.user)
            messages.success(request, "Marked uncollectible.")
        elif action == "credit-note":
            note = credit_note_issue(
                invoice_id=invoice_id,
                reason=reason,
                lines=_credit_requests(request),
                user=request.user,
            )
            messages.success(request, f"Credit note {note.number} issued for {note.total}.")
        else:
            raise Http404("No such action.")
    except InvoicingError as exc:
        messages.error(request, str(exc))
    except Invoice.DoesNotExist:
        raise Http404("No such invoice.") from None
    return HttpResponseRedirect(f"/finance/invoices/{invoice_id}/")


def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise InvoicingError("invalid_date", f"{raw!r} is not a date (YYYY-MM-DD).") from None


@finance_only
def receivables(request: HttpRequest) -> HttpResponse:
    """Open and overdue invoices with what is outstanding, and their ages per currency."""
    today = timezone.now().date()
    invoices = list(receivables_open(orgs=ALL())[:500])
    paid = payments_of(invoice_ids=[i.pk for i in invoices])
    rows = [
        {"invoice": i, "paid": paid.get(i.pk, Decimal(0)),
         "days": (today - i.due_date).days if i.due_date else 0}
        for i in invoices
    ]  # fmt: skip
    return render(
        request,
        "finance/receivables.html",
        {
            "aged": receivables_aged(orgs=ALL(), as_of=today),
            "buckets": BUCKETS,
            "rows": rows,
            "attention": payments_needing_attention().order_by("-created_at")[:50],
        },
    )


def _credit_requests(request: HttpRequest) -> list[CreditRequest] | None:
    """None (the whole invoice) unless some line has an amount to credit."""
    if request.POST.get("scope") != "lines":
        return None
    requests = []
    for key in request.POST:
        value = request.POST.get(key, "").strip()
        suffix = key.removeprefix("line-")
        if key.startswith("line-") and suffix.isdigit() and value:
            try:
                amount = Decimal(value)
            except InvalidOperation:
                raise InvoicingError("invalid_amount", f"{value!r} is not an amount.") from None
            requests.append(CreditRequest(line_id=int(suffix), amount=amount))
    if not requests:
        raise InvoicingError("no_lines", "Give an amount on at least one line to credit.")
    return requests


@finance_only
def export_download(request: HttpRequest) -> HttpResponse:
    month = _month(request)
    if month is None:
        raise PermissionDenied("Choose a period (YYYY-MM) to export.")
    issuer = request.GET.get("issuer") or None
    fmt = request.GET.get("format", "json")
    invoices = invoices_for(
        orgs=ALL(), period=month, issuer=issuer, include_drafts=False, include_void=False
    )
    stem = f"invoices-{month[0]:04d}-{month[1]:02d}" + (f"-{issuer}" if issuer else "")
    if fmt in ("zip", "facturx", "xrechnung"):
        kind = "pdf" if fmt == "zip" else fmt
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for invoice in invoices.iterator(chunk_size=200):
                name, content, _ = document_file(invoice, kind)
                archive.writestr(name, content)
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{stem}-{kind}.zip"'
        return response
    out = io.StringIO()
    if fmt == "csv":
        export.write_csv(export.documents(invoices), out)
        content_type = "text/csv"
    else:
        export.write_json(export.documents(invoices), out)
        content_type, fmt = "application/json", "json"
    response = HttpResponse(out.getvalue(), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{stem}.{fmt}"'
    return response


@finance_only
def stripe_status(request: HttpRequest) -> HttpResponse:
    syncs = StripeInvoiceSync.objects.select_related("invoice", "org").order_by("-updated_at")
    state = request.GET.get("state") or ""
    if state in StripeInvoiceSync.State.values:
        syncs = syncs.filter(state=state)
    return render(
        request,
        "finance/stripe.html",
        {"syncs": syncs[:300], "state": state, "states": StripeInvoiceSync.State.choices},
    )


@finance_only
def audit_log(request: HttpRequest) -> HttpResponse:
    entries = audit_entries(
        object_type=request.GET.get("type") or None, org_slug=request.GET.get("org") or None
    )
    return render(request, "finance/audit.html", {"entries": entries})
