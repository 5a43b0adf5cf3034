"""Webhook hardening (issue 15): every shape answered 400 or stored as ignored, never 500;
the metadata fallback only for an invoice with no Stripe id and the same amount; payments
recorded (partial ones too); a payment on a void invoice flagged for finance."""

import json
import time

import pytest
from rest_framework.test import APIClient

from billing.invoicing.models import Invoice, InvoicePayment, StripeEvent
from billing.invoicing.receivables import payments_needing_attention
from billing.invoicing.status import invoice_void
from billing.stripe.services import invoice_sync

URL = "/api/v1/stripe/webhook"


def _post(fake, event):
    payload, header = fake.signed_webhook(event)
    return APIClient().post(URL, data=payload, content_type="application/json",
                            HTTP_STRIPE_SIGNATURE=header)  # fmt: skip


def _event(type_="invoice.paid", obj=None, **extra):
    return {"id": f"evt_{time.monotonic_ns()}", "type": type_, "created": int(time.time()),
            "data": {"object": obj if obj is not None else {}}, **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "result"),
    [
        ({"data": "a string"}, "ignored: 'data' is not an object"),
        ({"data": {"object": ["x"]}}, "ignored: 'data.object' is not an object"),
        ({"data": {"object": {"id": "in_1", "metadata": ["tessera_invoice_id", "1"]}}},
         "ignored: 'data.object.metadata' is not an object"),
        ({"data": {"object": {"id": "in_" + "x" * 300}}},
         "ignored: 'data.object.id' is not a Stripe id of at most 255 characters"),
        ({"data": {"object": {"id": "in_1", "amount_paid": "100"}}},
         "ignored: 'data.object.amount_paid' is not an integer amount"),
    ],
)  # fmt: skip
def test_shapes_it_cannot_apply_are_stored_as_ignored_never_500(fake, finalized, shape, result):
    event = {**_event(), **shape}
    response = _post(fake, event)
    assert response.status_code == 200
    assert StripeEvent.objects.get(event_id=event["id"]).result == result
    assert Invoice.objects.get(pk=finalized.pk).status == "finalized"


@pytest.mark.parametrize(
    "body",
    [["a", "list"], {"id": "e" * 256, "type": "invoice.paid"}, {"id": 5, "type": "invoice.paid"},
     {"id": "evt_1", "type": ["invoice.paid"]}, "just a string"],
)  # fmt: skip
def test_events_it_cannot_store_are_refused_with_400(db, fake, body):
    payload = json.dumps(body)
    header = __import__("stripe").WebhookSignature.generate_signature_header(
        payload, fake.webhook_secret
    )
    response = APIClient().post(URL, data=payload.encode(), content_type="application/json",
                                HTTP_STRIPE_SIGNATURE=header)  # fmt: skip
    assert response.status_code == 400
    assert response.json()["code"] == "bad_payload"
    assert not StripeEvent.objects.exists()


def test_metadata_naming_an_invoice_bound_to_another_stripe_invoice_is_ignored(fake, finalized):
    invoice_sync(invoice_id=finalized.pk, client=fake.client())
    total = int(finalized.total * 100)
    event = _event(obj={"id": "in_someone_else", "amount_due": total, "amount_paid": total,
                        "metadata": {"tessera_invoice_id": str(finalized.pk)}})  # fmt: skip
    assert _post(fake, event).status_code == 200
    assert StripeEvent.objects.get().result == "ignored: unknown Stripe invoice in_someone_else"
    assert Invoice.objects.get(pk=finalized.pk).status == "finalized"
    assert not InvoicePayment.objects.exists()


def test_metadata_fallback_needs_no_stripe_id_yet_and_the_same_amount(fake, finalized):
    total = int(finalized.total * 100)
    wrong = _event(obj={"id": "in_lost", "amount_due": total - 1, "amount_paid": total - 1,
                        "metadata": {"tessera_invoice_id": str(finalized.pk)}})  # fmt: skip
    right = _event(obj={"id": "in_lost", "amount_due": total, "amount_paid": total,
                        "metadata": {"tessera_invoice_id": str(finalized.pk)}})  # fmt: skip
    _post(fake, wrong)
    assert Invoice.objects.get(pk=finalized.pk).status == "finalized"
    _post(fake, right)
    assert Invoice.objects.get(pk=finalized.pk).status == "paid"
    assert InvoicePayment.objects.get().amount == finalized.total


def test_a_partial_payment_is_recorded_and_the_invoice_stays_open(fake, finalized):
    invoice_sync(invoice_id=finalized.pk, client=fake.client())
    stripe_id = next(iter(fake.invoices))
    due = fake.invoices[stripe_id]["amount_due"]
    event = _event("invoice.payment_succeeded",
                   obj={"id": stripe_id, "amount_due": due, "amount_paid": 100_000})  # fmt: skip
    _post(fake, event)
    assert Invoice.objects.get(pk=finalized.pk).status == "finalized"
    assert str(InvoicePayment.objects.get().amount) == "1000.0000"
    assert StripeEvent.objects.get().result.startswith("partial payment of 1000.00")


def test_a_payment_on_a_void_invoice_is_flagged_for_finance(fake, finalized):
    invoice_sync(invoice_id=finalized.pk, client=fake.client())
    stripe_id = next(iter(fake.invoices))
    invoice_void(invoice_id=finalized.pk, reason="Duplicate")
    due = fake.invoices[stripe_id]["amount_due"]
    event = _event(obj={"id": stripe_id, "amount_due": due, "amount_paid": due})

    assert _post(fake, event).status_code == 200

    assert Invoice.objects.get(pk=finalized.pk).status == "void"
    (flagged,) = payments_needing_attention()
    assert flagged.invoice_id == finalized.pk
    assert "void" in flagged.attention
    assert "flagged" in StripeEvent.objects.get().result
