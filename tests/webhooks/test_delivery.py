"""Outbound webhooks to a real HTTP server on 127.0.0.1: Standard Webhooks signatures,
secret rotation, retries with backoff by a real Celery worker, failing, replay (SPEC §5)."""

import contextlib
import json
from datetime import timedelta

import pytest
from django.db import transaction
from standardwebhooks import Webhook, WebhookVerificationError

from webhooks.delivery import backoff
from webhooks.errors import WebhookError
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.services import (
    webhook_delivery_replay,
    webhook_endpoint_create,
    webhook_event_emit,
    webhook_secret_rotate,
)
from webhooks.signing import new_secret

from ..factories import OrgFactory
from ..support.narrow import present
from ..support.waiting import wait_until


def emit(org, type_="invoice.finalized", **data):
    return webhook_event_emit(org=org, type=type_, data={"number": "TFR-1", **data})


def verify(secret: str, request) -> dict:
    return Webhook(secret).verify(request.body, request.headers)


def test_delivered_with_a_signature_the_standardwebhooks_verifier_accepts(
    db, receiver, django_capture_on_commit_callbacks
):
    # given an org endpoint
    acme = OrgFactory.create(slug="acme")
    endpoint, secret = webhook_endpoint_create(org=acme, url=receiver.url)
    # when an event is emitted and its transaction commits (Celery in-process here)
    with django_capture_on_commit_callbacks(execute=True):
        event = emit(acme, total="12.30")
    # then the receiver got it once, signed so that the reference verifier accepts it
    [request] = receiver.wait_for(1)
    assert verify(secret.secret, request) == {
        "type": "invoice.finalized",
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": {"number": "TFR-1", "total": "12.30"},
    }
    assert request.headers["webhook-id"] == event.msg_id
    assert request.headers["content-type"] == "application/json"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert list(WebhookAttempt.objects.values_list("status_code", flat=True)) == [200]
    # and a wrong secret, or a tampered body, is refused by the verifier
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret.secret).verify(request.body.replace(b"12.30", b"1.30"), request.headers)


def test_rotation_signs_with_both_secrets_until_the_old_one_expires(
    db, receiver, django_capture_on_commit_callbacks
):
    acme = OrgFactory.create(slug="acme")
    endpoint, old = webhook_endpoint_create(org=acme, url=receiver.url)
    # when the secret is rotated with an overlap
    new = webhook_secret_rotate(endpoint=endpoint, overlap=timedelta(hours=24))
    with django_capture_on_commit_callbacks(execute=True):
        emit(acme)
    [during] = receiver.wait_for(1)
    # then both the old and the new secret verify the message: receivers switch at leisure
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verify(old.secret, during)["type"] == "invoice.finalized"
    assert verify(new.secret, during)["type"] == "invoice.finalized"
    # when it is rotated again at once (overlap 0), the first two no longer sign
    newest = webhook_secret_rotate(endpoint=endpoint, overlap=timedelta(0))
    with django_capture_on_commit_callbacks(execute=True):
        emit(acme, number="TFR-2")
    after = receiver.wait_for(2)[1]
    assert verify(newest.secret, after)["data"]["number"] == "TFR-2"
    for stale in (old, new):
        with pytest.raises(WebhookVerificationError):
            verify(stale.secret, after)


def test_events_reach_the_org_its_platform_endpoints_and_no_other_org(
    db, receiver, django_capture_on_commit_callbacks
):
    acme, globex = OrgFactory.create(slug="acme"), OrgFactory.create(slug="globex")
    mine, _ = webhook_endpoint_create(org=acme, url=receiver.url + "/acme")
    theirs, _ = webhook_endpoint_create(org=globex, url=receiver.url + "/globex")
    platform, _ = webhook_endpoint_create(org=None, url=receiver.url + "/erp")
    alerts_only, _ = webhook_endpoint_create(
        org=acme, url=receiver.url + "/alerts", event_types=["alert.triggered"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        emit(acme)
        webhook_event_emit(org=None, type="invoice.overdue", data={"count": 3})
    paths = sorted(r.path for r in receiver.wait_for(3))
    assert paths == [
        "/hooks/tessera/acme",  # acme's invoice
        "/hooks/tessera/erp",  # acme's invoice, on the platform's endpoint
        "/hooks/tessera/erp",  # the platform-only event
    ]
    assert not WebhookDelivery.objects.filter(endpoint__in=[theirs, alerts_only]).exists()


def test_nothing_is_stored_or_sent_when_no_endpoint_wants_it(db, receiver):
    acme = OrgFactory.create(slug="acme")
    webhook_endpoint_create(org=acme, url=receiver.url, event_types=["alert.triggered"])
    assert emit(acme) is None
    assert not WebhookEvent.objects.exists()
    assert receiver.requests == []


def test_nothing_is_stored_or_sent_when_the_change_rolls_back(
    db, receiver, django_capture_on_commit_callbacks
):
    acme = OrgFactory.create(slug="acme")
    webhook_endpoint_create(org=acme, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            emit(acme)
            raise RuntimeError("the finalization failed")
    assert callbacks == []
    assert not WebhookEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/hook", "insecure_url"),
        ("https://127.0.0.1/hook", "private_url"),
        ("https://10.1.2.3/hook", "private_url"),
        ("https://[::1]/hook", "private_url"),
        ("ftp://example.com/hook", "invalid_url"),
    ],
)
def test_urls_into_the_clouds_own_network_are_refused(db, settings, url, code):
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(WebhookError) as error:
        webhook_endpoint_create(org=OrgFactory.create(slug="acme"), url=url)
    assert (error.value.code, error.value.field) == (code, "url")
    assert not WebhookEndpoint.objects.exists()


def test_backoff_doubles_up_to_its_cap(settings):
    settings.TESSERA_WEBHOOK_BACKOFF_SECONDS = 60
    settings.TESSERA_WEBHOOK_BACKOFF_CAP_SECONDS = 3600
    assert [backoff(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_failing_endpoint_is_retried_with_backoff_then_marked_failing_and_replayed(
    receiver, monkeypatch, workers
):
    # given an endpoint that answers 500, and a real worker with a short backoff
    acme = OrgFactory.create(slug="acme")
    endpoint, secret = webhook_endpoint_create(org=acme, url=receiver.url)
    receiver.answer(500)
    try:
        workers.start(
            TESSERA_WEBHOOK_MAX_ATTEMPTS="4",
            TESSERA_WEBHOOK_BACKOFF_SECONDS="0.4",
            TESSERA_WEBHOOK_BACKOFF_CAP_SECONDS="1.0",
            TESSERA_WEBHOOK_ALLOW_PRIVATE="1",
        )
        with monkeypatch.context() as patched:
            # stored, not sent from here: the worker will send it
            patched.setattr("webhooks.services.deliveries_enqueue_on_commit", lambda **kwargs: None)
            event = emit(acme)
        delivery = WebhookDelivery.objects.get()
        # when the worker gets the delivery
        workers.send("webhooks.deliver", delivery.pk)
        # then it tries 4 times, waiting at least 0.4, 0.8, then 1.0 s (the cap) between tries:
        # each next try is scheduled after the previous answer came back, so a slow machine
        # only widens the gaps (a lower bound, never a window)
        assert wait_until(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "failed")
        requests = receiver.wait_for(4)
        gaps = [b.at - a.at for a, b in zip(requests, requests[1:], strict=False)]
        assert len(requests) == 4
        assert [round(g, 1) >= want for g, want in zip(gaps, (0.4, 0.8, 1.0), strict=True)] == [
            True,
            True,
            True,
        ]
        assert {r.headers["webhook-id"] for r in requests} == {event.msg_id}
        delivery.refresh_from_db()
        endpoint.refresh_from_db()
        assert (delivery.attempts, delivery.last_status_code) == (4, 500)
        assert endpoint.status == "failing"
        assert endpoint.failing_since is not None
        log = WebhookAttempt.objects.filter(delivery=delivery)
        assert list(log.values_list("status_code", flat=True)) == [500, 500, 500, 500]
        assert json.loads(present(log.first()).response_body) == {"error": "not today"}
    finally:
        workers.stop()
    # when the receiver is fixed and the delivery replayed (in this process)
    receiver.answer(200)
    webhook_delivery_replay(delivery=delivery)
    # then it is sent once more, with the same webhook-id, and the endpoint is active again
    replayed = receiver.wait_for(5)[4]
    assert replayed.headers["webhook-id"] == event.msg_id
    assert Webhook(secret.secret).verify(replayed.body, replayed.headers)["type"] == (
        "invoice.finalized"
    )
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert (delivery.status, delivery.attempts, endpoint.status) == ("succeeded", 1, "active")
    assert WebhookAttempt.objects.filter(delivery=delivery, replay=True).count() == 1
