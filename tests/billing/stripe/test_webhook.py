"""POST /api/v1/stripe/webhook: verified, stored once, applied once, forward only."""

import json

import pytest
from rest_framework.test import APIClient

from billing.invoicing.models import Invoice, StripeEvent
from billing.stripe.services import invoice_sync

URL = "/api/v1/stripe/webhook"


@pytest.fixture
def synced(fake, finalized):
    invoice_sync(invoice_id=finalized.pk, client=fake.client())
    return finalized


def _post(payload: bytes, header: str):
    return APIClient().post(
        URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


def _status(invoice) -> str:
    return Invoice.objects.get(pk=invoice.pk).status


def _event(fake, client, synced, action: str):
    stripe_id = next(iter(fake.invoices))
    getattr(client.v1.invoices, action)(stripe_id, **(
        {"params": {"paid_out_of_band": True}} if action == "pay" else {}))  # fmt: skip
    return fake.events[-1]


def test_paid_event_marks_the_invoice_paid_and_a_replay_changes_nothing(fake, synced):
    event = _event(fake, fake.client(), synced, "pay")
    payload, header = fake.signed_webhook(event)

    first = _post(payload, header)
    replay = _post(payload, header)

    assert first.status_code == replay.status_code == 200
    assert (first.json()["duplicate"], replay.json()["duplicate"]) == (False, True)
    assert _status(synced) == "paid"
    assert StripeEvent.objects.filter(event_id=event["id"]).count() == 1
    assert Invoice.objects.get(pk=synced.pk).status_reason == "Stripe invoice.paid"


def test_out_of_order_events_end_in_the_right_status(fake, synced):
    client = fake.client()
    uncollectible = _event(fake, client, synced, "mark_uncollectible")
    paid = _event(fake, client, synced, "pay")  # Stripe lets an uncollectible invoice be paid

    assert _post(*fake.signed_webhook(paid)).status_code == 200
    assert _post(*fake.signed_webhook(uncollectible)).status_code == 200

    assert _status(synced) == "paid"
    assert list(StripeEvent.objects.values_list("result", flat=True).order_by("pk")) == [
        "moved to paid",
        "left at paid",
    ]


def test_payment_failed_is_recorded_without_a_status_change(fake, synced):
    fake.payment_failed(next(iter(fake.invoices)))

    response = _post(*fake.signed_webhook(fake.events[-1]))

    assert response.json()["result"] == "payment failed: recorded"
    assert _status(synced) == "finalized"


def test_a_bad_signature_is_refused_with_400_and_changes_nothing(fake, synced):
    event = _event(fake, fake.client(), synced, "pay")
    payload, _ = fake.signed_webhook(event)
    _, forged = fake.signed_webhook(event, secret="whsec_not_ours")
    tampered = json.dumps({**event, "type": "invoice.voided"}).encode()
    _, header = fake.signed_webhook(event)

    for body, signature in ((payload, forged), (tampered, header), (payload, "")):
        response = _post(body, signature)
        assert response.status_code == 400
        assert response.json()["code"] == "bad_signature"
    assert _status(synced) == "finalized"
    assert StripeEvent.objects.count() == 0


def test_an_event_for_an_unknown_invoice_is_stored_and_ignored(fake, synced):
    event = {**_event(fake, fake.client(), synced, "pay")}
    event["id"] = "evt_other"
    event["data"] = {"object": {"id": "in_not_ours", "object": "invoice", "metadata": {}}}

    response = _post(*fake.signed_webhook(event))

    assert response.json()["result"] == "ignored: unknown Stripe invoice in_not_ours"
    assert _status(synced) == "finalized"
