"""The Stripe fake behaves like Stripe where our code depends on it (SPEC §8)."""

import pytest
import stripe

from testing.stripe_fake import FakeStripe


@pytest.fixture
def client(fake: FakeStripe) -> stripe.StripeClient:
    return fake.client()


def test_same_key_same_params_replays_the_first_response(fake, client):
    first = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k"})
    again = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k"})

    assert first.id == again.id
    assert len(fake.customers) == 1


def test_same_key_other_params_is_an_idempotency_error(fake, client):
    client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k"})

    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"name": "Other"}, options={"idempotency_key": "k"})
    assert [c["name"] for c in fake.customers.values()] == ["Acme"]


def test_unknown_parameters_are_refused_even_nested(fake, client):
    with pytest.raises(stripe.InvalidRequestError) as top:
        client.v1.customers.create(params={"name": "Acme", "nickname": "x"})
    with pytest.raises(stripe.InvalidRequestError) as nested:
        client.v1.customers.create(params={"address": {"planet": "Mars"}})

    assert (top.value.param, nested.value.param) == ("nickname", "address[planet]")
    assert top.value.user_message == "Received unknown parameter: nickname"
    assert fake.customers == {}


def test_faults_500_and_409_apply_nothing_and_lost_applies_once(fake, client):
    fake.inject("500", path="/v1/customers")
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "a"})
    fake.inject("409", path="/v1/customers")
    with pytest.raises(stripe.APIError) as conflict:
        client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "a"})
    assert conflict.value.http_status == 409
    assert fake.customers == {}

    fake.inject("lost", path="/v1/customers")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "a"})
    assert len(fake.customers) == 1
    replay = client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "a"})
    assert list(fake.customers) == [replay.id]


def test_the_sdks_own_retries_recover_a_lost_response(fake):
    client = fake.client(max_network_retries=1)
    fake.inject("lost", path="/v1/customers")

    customer = client.v1.customers.create(params={"name": "A"})  # SDK adds a key and retries

    assert list(fake.customers) == [customer.id]


def test_invoice_lifecycle_and_signed_events(fake, client):
    customer = client.v1.customers.create(params={"name": "A"})
    invoice = client.v1.invoices.create(
        params={"customer": customer.id, "collection_method": "send_invoice", "days_until_due": 30}
    )
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "amount": 1250, "currency": "usd"}
    )
    opened = client.v1.invoices.finalize_invoice(invoice.id)
    paid = client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(invoice.id)
    note = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 250})

    assert (opened.status, opened.total, paid.status, note.amount) == ("open", 1250, "paid", 250)
    payload, header = fake.signed_webhook(fake.last_event("invoice.paid"))
    event = stripe.Webhook.construct_event(payload, header, fake.webhook_secret)
    assert (event.type, event.data.object.id) == ("invoice.paid", invoice.id)
