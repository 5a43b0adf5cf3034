"""The outbound webhook events of invoicing (SPEC §5), emitted through
``webhooks.services.webhook_events_emit`` inside the transaction that makes the change (an
outbox: nothing is sent unless it commits):

- ``invoice.finalized``: ``invoice_finalized_emit``, from finalization (a batch at once);
- ``credit_note.issued``: ``credit_note_issued_emit``, from the credit-note service;
- ``invoice.paid`` and ``invoice.overdue``: ``invoice_event_emit``, from the receivables
  (a payment recorded, from Stripe or by hand; a due date passed).

``data`` is the invoice as the API shows it, amounts as decimal strings and dates ISO 8601;
receivers fetch its lines and PDF from ``links``.
"""

from collections.abc import Sequence
from typing import Any

from tenancy.models import Org
from webhooks.models import EventType
from webhooks.services import Emit, webhook_events_emit

from .models import CreditNote, Invoice


def invoice_event_payload(invoice: Invoice, org_slug: str | None = None) -> dict[str, Any]:
    """The event's ``data``: the invoice as a customer sees it."""
    if org_slug is None:
        org_slug = Org.objects.values_list("slug", flat=True).get(pk=invoice.org_id)
    return {
        "id": invoice.pk,
        "number": invoice.number,
        "org": org_slug,
        "status": invoice.status,
        "currency": invoice.currency,
        "period_start": invoice.period_start,
        "period_end": invoice.period_end,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "subtotal": invoice.subtotal,
        "credits": invoice.credits,
        "tax_total": invoice.tax_total,
        "total": invoice.total,
        "links": {
            "invoice": f"/api/v1/invoices/{invoice.pk}",
            "pdf": f"/api/v1/invoices/{invoice.pk}/pdf",
        },
    }


def invoices_emit(
    *, invoices: Sequence[Invoice], type: str, org_slugs: dict[int, str] | None = None
) -> None:
    """Emit ``type`` (an invoice ``EventType``) for each invoice, in a few queries."""
    if org_slugs is None:
        org_slugs = dict(
            Org.objects.filter(pk__in={i.org_id for i in invoices}).values_list("pk", "slug")
        )
    webhook_events_emit(
        events=[
            Emit(invoice.org_id, type, invoice_event_payload(invoice, org_slugs[invoice.org_id]))
            for invoice in invoices
        ]
    )


def invoice_event_emit(*, invoice: Invoice, event: str) -> None:
    """Emit ``event`` (``invoice.paid`` | ``invoice.overdue``) for one invoice."""
    if event not in (EventType.INVOICE_PAID, EventType.INVOICE_OVERDUE):
        raise ValueError(f"not an invoice status event: {event!r}")
    invoices_emit(invoices=[invoice], type=event)


def invoice_finalized_emit(*, invoices: Sequence[Invoice], org_slugs: dict[int, str]) -> None:
    invoices_emit(invoices=invoices, type=EventType.INVOICE_FINALIZED, org_slugs=org_slugs)


def credit_note_issued_emit(*, note: CreditNote, invoice: Invoice, org_slug: str) -> None:
    webhook_events_emit(
        events=[
            Emit(
                note.org_id,
                EventType.CREDIT_NOTE_ISSUED,
                {
                    "id": note.pk,
                    "number": note.number,
                    "org": org_slug,
                    "invoice": {"id": invoice.pk, "number": invoice.number},
                    "currency": note.currency,
                    "issue_date": note.issue_date,
                    "reason": note.reason,
                    "full": note.full,
                    "subtotal": note.subtotal,
                    "credits": note.credits,
                    "tax_total": note.tax_total,
                    "total": note.total,
                },
            )
        ]
    )
