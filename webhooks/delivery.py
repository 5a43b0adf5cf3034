"""Attempting deliveries: sign, POST, log the attempt, decide the next one (SPEC §5).

Attempts run outside any transaction (no row lock is held over the network): a delivery is
claimed by a conditional UPDATE that moves its ``next_attempt_at`` ahead, so two workers never
send it at once. Scheduling the retry is the caller's (``webhooks.tasks.deliver``): this
module enqueues nothing, so the task module may import it without a cycle.
"""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .addresses import endpoint_url_check
from .errors import WebhookError
from .models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSecret,
)
from .signing import signature_header

Status = WebhookDelivery.Status
USER_AGENT = "Tessera-Webhooks/1.0"
EARLY_SLACK = timedelta(seconds=1)


def secrets_in_force(*, endpoint: WebhookEndpoint, at: datetime) -> list[str]:
    """The current secret first, then any still within its overlap."""
    rows = WebhookSecret.objects.filter(endpoint=endpoint).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=at)
    )
    return [s.secret for s in sorted(rows, key=lambda s: (s.expires_at is not None, s.pk))]


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: base × 2^(attempts − 1), capped."""
    base = settings.TESSERA_WEBHOOK_BACKOFF_SECONDS
    cap = settings.TESSERA_WEBHOOK_BACKOFF_CAP_SECONDS
    return float(min(base * 2 ** max(0, attempts - 1), cap))


def message_body(event: WebhookEvent) -> bytes:
    """The JSON body, the same bytes on every attempt: ``{"type", "timestamp", "data"}``
    as the Standard Webhooks specification recommends."""
    payload = {
        "type": event.type,
        "timestamp": event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    body: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _post(endpoint: WebhookEndpoint, event: WebhookEvent, at: datetime) -> _Outcome:
    started = time.monotonic()
    try:
        endpoint_url_check(endpoint.url)
        body = message_body(event)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": event.msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature_header(
                secrets_in_force=secrets_in_force(endpoint=endpoint, at=at),
                msg_id=event.msg_id,
                timestamp=at,
                body=body,
            ),
        }
        response = httpx.post(
            endpoint.url,
            content=body,
            headers=headers,
            timeout=settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS,
            follow_redirects=False,
        )
    except WebhookError as exc:
        return _Outcome(None, "", f"refused: {exc}", 0)
    except httpx.HTTPError as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        return _Outcome(None, "", f"{type(exc).__name__}: {exc}"[:500], elapsed)
    elapsed = int((time.monotonic() - started) * 1000)
    return _Outcome(response.status_code, response.text[:1000], "", elapsed)


def webhook_delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Attempt one delivery if it is pending and due; returns it, or None when it was not
    due (sent already, in flight elsewhere, or waiting for its backoff). A 2xx succeeds; any
    other answer or none is due again after ``backoff`` (its ``next_attempt_at``, which the
    caller schedules) until ``TESSERA_WEBHOOK_MAX_ATTEMPTS``, then the delivery fails and its
    endpoint is marked failing. Idempotent per attempt."""
    now = timezone.now()
    claim = now + timedelta(seconds=settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS * 2 + 30)
    # A countdown task may start a little before its due time (timer resolution, clocks):
    # it is still the one that was scheduled, so a second's slack keeps it from being lost.
    # An attempt in flight has moved the due time a claim ahead: never within the slack.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=Status.PENDING, next_attempt_at__lte=now + EARLY_SLACK
    ).update(next_attempt_at=claim)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint.status == WebhookEndpoint.Status.DISABLED:
        outcome = _Outcome(None, "", "endpoint disabled", 0)
    else:
        outcome = _post(endpoint, delivery.event, now)
    return _record(delivery, outcome, now)


@transaction.atomic
def _record(delivery: WebhookDelivery, outcome: _Outcome, at: datetime) -> WebhookDelivery:
    endpoint = delivery.endpoint
    WebhookAttempt.objects.create(
        org_id=delivery.org_id,
        delivery=delivery,
        attempted_at=at,
        status_code=outcome.status_code,
        error=outcome.error,
        response_body=outcome.body,
        duration_ms=outcome.duration_ms,
        replay=delivery.replayed_at is not None and delivery.attempts == 0,
    )
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    if outcome.ok:
        delivery.status = Status.SUCCEEDED
        delivery.delivered_at = timezone.now()
        delivery.next_attempt_at = None
        WebhookEndpoint.objects.filter(
            pk=endpoint.pk, status=WebhookEndpoint.Status.FAILING
        ).update(status=WebhookEndpoint.Status.ACTIVE, failing_since=None)
    elif delivery.attempts >= settings.TESSERA_WEBHOOK_MAX_ATTEMPTS or (
        endpoint.status == WebhookEndpoint.Status.DISABLED
    ):
        delivery.status = Status.FAILED
        delivery.next_attempt_at = None
        WebhookEndpoint.objects.filter(pk=endpoint.pk, status=WebhookEndpoint.Status.ACTIVE).update(
            status=WebhookEndpoint.Status.FAILING, failing_since=at
        )
    else:
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=backoff(delivery.attempts))
    delivery.save(
        update_fields=[
            "attempts",
            "last_status_code",
            "last_error",
            "status",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    return delivery


def deliveries_due(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Pending deliveries whose attempt is due (lost tasks, or retries in in-process mode)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
