"""Stripe webhooks: verified on the raw body, stored once, applied once (SPEC §5).

Invoice events move the local status forward only (``invoice_status_advance``), so replays
and any arrival order end in the same status: paid beats uncollectible, and nothing leaves
paid or void.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import DomainError, ErrorCode, ErrorKind

from ..invoicing.lock_objects import lock_stripe_event
from ..invoicing.models import Invoice, StripeEvent, StripeInvoiceSync
from ..invoicing.status import invoice_status_advance
from .client import webhook_secret

STATUS_FOR_EVENT = {
    "invoice.paid": Invoice.Status.PAID,
    "invoice.payment_succeeded": Invoice.Status.PAID,
    "invoice.voided": Invoice.Status.VOID,
    "invoice.marked_uncollectible": Invoice.Status.UNCOLLECTIBLE,
}


class BadSignature(DomainError):
    """The body does not carry Stripe's valid signature (or is not a Stripe event)."""

    codes = {"bad_signature": ErrorCode(ErrorKind.INVALID, "The Stripe signature check failed.")}

    def __init__(self, reason: str) -> None:
        super().__init__("bad_signature", f"Signature check failed: {reason}")


@dataclass(frozen=True)
class Received:
    event: StripeEvent
    duplicate: bool


def webhook_receive(*, payload: bytes, signature: str | None) -> Received:
    """Verify ``payload`` (the raw request body) with Stripe's own scheme, store the event
    once and apply it once. Raises ``BadSignature`` (nothing stored) otherwise."""
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, webhook_secret(), stripe.Webhook.DEFAULT_TOLERANCE
        )
        data = json.loads(payload)
        event_id, event_type = str(data["id"]), str(data["type"])
    except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError) as exc:
        raise BadSignature(str(exc)) from exc
    try:
        with transaction.atomic():
            event, created = StripeEvent.objects.get_or_create(
                event_id=event_id, defaults={"type": event_type, "payload": data}
            )
    except IntegrityError:
        event, created = StripeEvent.objects.get(event_id=event_id), False
    with transaction.atomic():
        event = lock_stripe_event(event_pk=event.pk)
        if event.applied_at is not None:
            return Received(event, duplicate=True)
        event.result = _apply(event)[:200]
        event.applied_at = timezone.now()
        event.save(update_fields=["result", "applied_at"])
    return Received(event, duplicate=not created)


def _apply(event: StripeEvent) -> str:
    if not event.type.startswith("invoice."):
        return "ignored: not an invoice event"
    obj = event.payload.get("data", {}).get("object", {})
    invoice_id = _local_invoice(obj)
    if invoice_id is None:
        return f"ignored: unknown Stripe invoice {obj.get('id')}"
    if event.type == "invoice.payment_failed":
        StripeInvoiceSync.objects.filter(invoice_id=invoice_id).update(
            last_error=f"payment failed ({event.event_id})"
        )
        return "payment failed: recorded"
    status = STATUS_FOR_EVENT.get(event.type)
    if status is None:
        return f"ignored: {event.type}"
    created = event.payload.get("created")
    at = datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int) else None
    invoice, changed = invoice_status_advance(
        invoice_id=invoice_id,
        status=status,
        reason=f"Stripe {event.type}",
        at=at,
        actor="stripe webhook",
    )
    return f"{'moved to' if changed else 'left at'} {invoice.status}"


def _local_invoice(obj: dict) -> int | None:
    stripe_id = obj.get("id")
    found = (
        StripeInvoiceSync.objects.filter(stripe_invoice_id=stripe_id)
        .values_list("invoice_id", flat=True)
        .first()
        if stripe_id
        else None
    )
    if found is not None:
        return found
    raw = (obj.get("metadata") or {}).get("tessera_invoice_id")
    if raw and str(raw).isdigit() and Invoice.objects.filter(pk=int(raw)).exists():
        return int(raw)
    return None
