"""The outbound webhook events of invoicing (SPEC §5), emitted through
``webhooks.services.webhook_events_emit`` inside the transaction that makes the change:

- ``invoice.finalized`` (``invoice_finalized_emit``, from finalization),
- ``credit_note.issued`` (``credit_note_issued_emit``, from the credit-note service),
- ``invoice.paid`` and ``invoice.overdue``: ``invoices_emit(invoices, EventType.INVOICE_PAID)``
  from whatever service records the payment or the lapse of the due date.

``data`` is the invoice as the API shows it, amounts as decimal strings (minor units) and
dates ISO 8601; receivers fetch lines and the PDF from ``links``.
"""

from collections.abc import Sequence
from typing import Any

from webhooks.models import EventType
from webhooks.services import Emit, webhook_events_emit

from .models import CreditNote, Invoice


def invoice_event_data(invoice: Invoice, org_slug: str) -> dict[str, Any]:
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
        from tenancy.models import Org

        org_slugs = dict(
            Org.objects.filter(pk__in={i.org_id for i in invoices}).values_list("pk", "slug")
        )
    webhook_events_emit(
        events=[
            Emit(invoice.org_id, type, invoice_event_data(invoice, org_slugs[invoice.org_id]))
            for invoice in invoices
        ]
    )


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
