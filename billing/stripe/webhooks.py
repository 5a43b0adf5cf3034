"""Stripe webhooks: verified on the raw body, stored once, applied once (SPEC §5).

Invoice events move the local status forward only (``invoice_status_advance``), so replays
and any arrival order end in the same status: paid beats uncollectible, and nothing leaves
paid or void. Payments Stripe reports are recorded as ``InvoicePayment`` rows (partial ones
too: ``amount_paid`` below ``amount_due``); a payment on a void invoice is recorded and
flagged for finance (refund), never applied silently.

Hardening (issue 15): a signed body that is not a JSON object with a string ``id`` and
``type`` of Stripe's lengths is refused with 400 (``BadPayload``); any other shape it cannot
apply (``data`` not an object, ``metadata`` a list, an id over 255 characters...) is stored
as ``ignored: ...`` and answered 200, so Stripe stops retrying; nothing here answers 500.
An invoice is found by its Stripe id; the ``tessera_invoice_id`` metadata is trusted only
for an invoice that has no Stripe id yet, and only when the amount matches its total.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import DomainError, ErrorCode, ErrorKind

from ..invoicing.errors import InvoicingError
from ..invoicing.lock_objects import lock_stripe_event
from ..invoicing.models import Invoice, InvoicePayment, StripeEvent, StripeInvoiceSync
from ..invoicing.receivables import invoice_payment_record
from ..invoicing.status import invoice_status_advance
from ..money import minor_units
from .client import webhook_secret

STATUS_FOR_EVENT = {
    "invoice.paid": Invoice.Status.PAID,
    "invoice.payment_succeeded": Invoice.Status.PAID,
    "invoice.voided": Invoice.Status.VOID,
    "invoice.marked_uncollectible": Invoice.Status.UNCOLLECTIBLE,
}
PAYMENT_EVENTS = ("invoice.paid", "invoice.payment_succeeded")
MAX_ID = 255  # StripeEvent.event_id, and the longest Stripe id we store
MAX_TYPE = 100


class BadSignature(DomainError):
    """The body does not carry Stripe's valid signature (or is not a Stripe event)."""

    codes = {"bad_signature": ErrorCode(ErrorKind.INVALID, "The Stripe signature check failed.")}

    def __init__(self, reason: str) -> None:
        super().__init__("bad_signature", f"Signature check failed: {reason}")


class BadPayload(DomainError):
    """Signed, but not an event we can even store (answered 400, never 500)."""

    codes = {"bad_payload": ErrorCode(ErrorKind.INVALID, "The signed event cannot be stored.")}

    def __init__(self, reason: str) -> None:
        super().__init__("bad_payload", f"Unusable event: {reason}")


@dataclass(frozen=True)
class Received:
    event: StripeEvent
    duplicate: bool


def webhook_receive(*, payload: bytes, signature: str | None) -> Received:
    """Verify ``payload`` (the raw request body) with Stripe's own scheme, store the event
    once and apply it once. Raises ``BadSignature`` or ``BadPayload`` (nothing stored)."""
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, webhook_secret(), stripe.Webhook.DEFAULT_TOLERANCE
        )
    except (stripe.SignatureVerificationError, ValueError, TypeError) as exc:
        raise BadSignature(str(exc)) from exc
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise BadPayload(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadPayload("the event must be a JSON object")
    event_id, event_type = data.get("id"), data.get("type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID:
        raise BadPayload(f"'id' must be a string of 1 to {MAX_ID} characters")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_TYPE:
        raise BadPayload(f"'type' must be a string of 1 to {MAX_TYPE} characters")
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


class _Ignored(Exception):
    pass


def _apply(event: StripeEvent) -> str:
    if not event.type.startswith("invoice."):
        return "ignored: not an invoice event"
    try:
        obj = _invoice_object(event.payload)
        invoice_id = _local_invoice(obj)
    except _Ignored as exc:
        return f"ignored: {exc}"
    if invoice_id is None:
        return f"ignored: unknown Stripe invoice {str(obj.get('id'))[:60]}"
    if event.type == "invoice.payment_failed":
        StripeInvoiceSync.objects.filter(invoice_id=invoice_id).update(
            last_error=f"payment failed ({event.event_id})"[:2000]
        )
        return "payment failed: recorded"
    status = STATUS_FOR_EVENT.get(event.type)
    if status is None:
        return f"ignored: {event.type}"
    created = event.payload.get("created")
    at = datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int) else None
    if event.type in PAYMENT_EVENTS:
        recorded = _record_payment(event, obj, invoice_id, at)
        if recorded:
            return recorded
    invoice, changed = invoice_status_advance(
        invoice_id=invoice_id,
        status=status,
        reason=f"Stripe {event.type}",
        at=at,
        actor="stripe webhook",
    )
    if changed and status == Invoice.Status.PAID:
        from ..invoicing.events import invoice_event_emit

        invoice_event_emit(invoice=invoice, event="invoice.paid")
    return f"{'moved to' if changed else 'left at'} {invoice.status}"


def _invoice_object(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise _Ignored("'data' is not an object")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise _Ignored("'data.object' is not an object")
    stripe_id = obj.get("id")
    if stripe_id is not None and (not isinstance(stripe_id, str) or len(stripe_id) > MAX_ID):
        raise _Ignored(f"'data.object.id' is not a Stripe id of at most {MAX_ID} characters")
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _Ignored("'data.object.metadata' is not an object")
    for name in ("amount_due", "amount_paid", "total"):
        value = obj.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _Ignored(f"'data.object.{name}' is not an integer amount")
    return obj


def _minor(value: int, currency: str) -> Decimal:
    return Decimal(value).scaleb(-minor_units(currency))


def _local_invoice(obj: dict[str, Any]) -> int | None:
    stripe_id = obj.get("id")
    if stripe_id:
        found = (
            StripeInvoiceSync.objects.filter(stripe_invoice_id=stripe_id)
            .values_list("invoice_id", flat=True)
            .first()
        )
        if found is not None:
            return found
    raw = (obj.get("metadata") or {}).get("tessera_invoice_id")
    if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw).isdigit():
        return None
    invoice = Invoice.objects.filter(pk=int(raw)).exclude(status=Invoice.Status.DRAFT).first()
    if invoice is None:
        return None
    # Only an invoice Stripe does not hold yet (its create's response was lost) may be found
    # by metadata: one bound to another Stripe invoice is not this one.
    if StripeInvoiceSync.objects.filter(invoice=invoice).exclude(stripe_invoice_id="").exists():
        return None
    amount = obj.get("amount_due", obj.get("total"))
    if amount is None or _minor(amount, invoice.currency) != invoice.total:
        return None
    return invoice.pk


def _record_payment(
    event: StripeEvent, obj: dict[str, Any], invoice_id: int, at: datetime | None
) -> str:
    """Record what Stripe says was paid beyond the Stripe payments already recorded; return
    the result when the status must not move (partial, void), "" to move it to paid."""
    invoice = Invoice.objects.get(pk=invoice_id)
    # What Stripe says was paid in all; an event without amounts means the whole invoice.
    paid_minor = obj.get("amount_paid", obj.get("amount_due"))
    if paid_minor is None:
        paid_minor = int(invoice.total.scaleb(minor_units(invoice.currency)))
    stripe_paid = sum(
        InvoicePayment.objects.filter(invoice=invoice, method=InvoicePayment.Method.STRIPE)
        .values_list("amount", flat=True),
        Decimal(0),
    )  # fmt: skip
    new = _minor(paid_minor, invoice.currency) - stripe_paid
    if new > 0:
        try:
            payment = invoice_payment_record(
                invoice_id=invoice_id,
                amount=new,
                paid_on=(at or timezone.now()).date(),
                reference=str(obj.get("id") or event.event_id)[:200],
                method=InvoicePayment.Method.STRIPE,
                stripe_event_id=event.event_id,
                settle=False,
                actor="stripe webhook",
            )
        except InvoicingError as exc:
            return f"ignored: {exc.message}"
        if payment.attention:
            return f"payment of {new} recorded and flagged: {payment.attention}"
    if invoice.status == Invoice.Status.VOID:
        return "left at void"
    due = obj.get("amount_due")
    if isinstance(due, int) and paid_minor < due:
        return f"partial payment of {new} recorded; left at {invoice.status}"
    return ""
