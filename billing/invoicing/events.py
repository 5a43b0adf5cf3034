"""Invoice lifecycle events for outbound webhooks (SPEC §5: ``invoice.paid``,
``invoice.overdue``).

The hook point: ``invoice_event_emit`` calls, once the caller's transaction commits, each
dotted path in ``TESSERA_INVOICE_EVENT_HOOKS`` with ``(event=..., org_id=..., payload=...)``.
The outbound-webhook service (issue 17, ``webhook_event_emit``) plugs in there; until then
the list is empty and the event is only recorded in the audit log by the status move.
"""

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from .models import Invoice


def invoice_event_payload(invoice: Invoice) -> dict[str, Any]:
    """The event's ``data``: the invoice as a customer sees it (amounts as decimal strings)."""
    return {
        "id": invoice.pk,
        "number": invoice.number,
        "status": invoice.status,
        "currency": invoice.currency,
        "total": str(invoice.total),
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
    }


def invoice_event_emit(*, invoice: Invoice, event: str) -> None:
    """Hand ``event`` (``invoice.paid`` | ``invoice.overdue``) to every configured hook after
    commit. A hook that fails is logged by Django's robust on_commit, never undoes the move."""
    payload = invoice_event_payload(invoice)
    for path in getattr(settings, "TESSERA_INVOICE_EVENT_HOOKS", []):
        hook = import_string(path)

        def deliver(hook: Any = hook) -> None:
            hook(event=event, org_id=invoice.org_id, payload=payload)

        transaction.on_commit(deliver, robust=True)
