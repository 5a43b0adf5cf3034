"""Webhook writes: endpoints, secret rotation, emitting events, attempting and replaying.

Emitting is an outbox: ``webhook_event_emit`` stores the event and one delivery per
subscribed endpoint in the caller's transaction and enqueues the deliveries on commit, so an
event goes out if and only if the change it reports committed. Attempts run outside any
transaction (no row lock is held over the network): a delivery is claimed by a conditional
UPDATE that moves its ``next_attempt_at`` ahead, so two workers never send it at once.
"""

import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import DomainError, ErrorCode, ErrorKind
from tenancy.models import Org

from .models import (
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSecret,
)
from .signing import new_secret, signature_header

Status = WebhookDelivery.Status
USER_AGENT = "Tessera-Webhooks/1.0"
EARLY_SLACK = timedelta(seconds=1)


class WebhookError(DomainError):
    """A webhook endpoint that cannot be set as asked; the offending input is named."""

    codes = {
        "invalid_url": ErrorCode(ErrorKind.INVALID, "Not an absolute http(s) URL."),
        "insecure_url": ErrorCode(ErrorKind.INVALID, "Webhook URLs must use https."),
        "unresolvable_url": ErrorCode(ErrorKind.INVALID, "The URL's host does not resolve."),
        "private_url": ErrorCode(
            ErrorKind.INVALID, "The URL's host is a private, loopback or reserved address."
        ),
        "unknown_event_type": ErrorCode(ErrorKind.INVALID, "Not one of the event types."),
    }

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(code, message, {field: [message]} if field else None)
        self.field = field


# --- endpoints ------------------------------------------------------------------------------


def endpoint_url_check(url: str) -> None:
    """Refuse URLs a worker must not call: not http(s), or (unless
    ``TESSERA_WEBHOOK_ALLOW_PRIVATE``) plain http or a host that resolves to a loopback,
    private, link-local or reserved address — the worker would otherwise be a way into the
    cloud's own network (SSRF). Raises ``WebhookError`` naming ``url``."""
    parts = urlsplit(url)
    allow_private = settings.TESSERA_WEBHOOK_ALLOW_PRIVATE
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookError("invalid_url", "Give an absolute http(s) URL.", "url")
    if allow_private:
        return
    if parts.scheme != "https":
        raise WebhookError("insecure_url", "Webhook URLs must use https.", "url")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise WebhookError(
            "unresolvable_url", f"{parts.hostname!r} does not resolve.", "url"
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise WebhookError(
                "private_url", f"{parts.hostname!r} resolves to a non-public address.", "url"
            )


def _event_types(types: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(types))
    unknown = [t for t in chosen if t not in EventType.values]
    if unknown:
        known = ", ".join(EventType.values)
        raise WebhookError(
            "unknown_event_type", f"Unknown event type {unknown[0]!r}; known: {known}.", "events"
        )
    return chosen


@transaction.atomic
def webhook_endpoint_create(
    *,
    org: Org | None,
    url: str,
    description: str = "",
    event_types: Iterable[str] = (),
    created_by: Any = None,
) -> tuple[WebhookEndpoint, WebhookSecret]:
    """A new endpoint of ``org`` (None: a platform endpoint) with its first signing secret.
    Raises ``WebhookError`` for a refused URL or an unknown event type."""
    endpoint_url_check(url)
    endpoint = WebhookEndpoint.objects.create(
        org=org,
        url=url,
        description=description[:200],
        event_types=_event_types(event_types),
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
    )
    secret = WebhookSecret.objects.create(
        org=org, endpoint=endpoint, secret=new_secret(), created_at=timezone.now()
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    description: str | None = None,
    event_types: Iterable[str] | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given. Enabling a disabled or failing endpoint makes it active."""
    if url is not None:
        endpoint_url_check(url)
        endpoint.url = url
    if description is not None:
        endpoint.description = description[:200]
    if event_types is not None:
        endpoint.event_types = _event_types(event_types)
    if enabled is not None:
        endpoint.status = (
            WebhookEndpoint.Status.ACTIVE if enabled else WebhookEndpoint.Status.DISABLED
        )
        endpoint.failing_since = None
    endpoint.save()
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint with its secrets and delivery log."""
    endpoint.delete()


@transaction.atomic
def webhook_secret_rotate(
    *, endpoint: WebhookEndpoint, overlap: timedelta | None = None
) -> WebhookSecret:
    """A new current secret; the previous one keeps signing until ``overlap`` (default
    ``TESSERA_WEBHOOK_SECRET_OVERLAP_HOURS``) has passed: zero-downtime rotation. Rotating
    again within the overlap expires the older ones now (at most two are ever in force)."""
    now = timezone.now()
    if overlap is None:
        overlap = timedelta(hours=settings.TESSERA_WEBHOOK_SECRET_OVERLAP_HOURS)
    # Serializes rotations of one endpoint: the partial unique index admits one current secret.
    WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
    WebhookSecret.objects.filter(endpoint=endpoint, expires_at__gt=now).update(expires_at=now)
    WebhookSecret.objects.filter(endpoint=endpoint, expires_at__isnull=True).update(
        expires_at=now + overlap
    )
    return WebhookSecret.objects.create(
        org_id=endpoint.org_id, endpoint=endpoint, secret=new_secret(), created_at=now
    )


def secrets_in_force(*, endpoint: WebhookEndpoint, at: datetime) -> list[str]:
    """The current secret first, then any still within its overlap."""
    rows = WebhookSecret.objects.filter(endpoint=endpoint).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=at)
    )
    return [s.secret for s in sorted(rows, key=lambda s: (s.expires_at is not None, s.pk))]


# --- emitting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Emit:
    """One event to emit: ``org`` None for a platform-only event."""

    org_id: int | None
    type: str
    data: dict[str, Any]


def webhook_event_emit(*, org: Org | None, type: str, data: dict[str, Any]) -> WebhookEvent | None:
    """Record event ``type`` (an ``EventType``) about ``org`` and queue its delivery to every
    subscribed endpoint: the org's own and the platform's (``org`` None: the platform's
    only). Call it inside the transaction of the change it reports; nothing is sent unless
    that transaction commits. ``data`` must be JSON-serializable (decimals and dates are
    written as strings). Returns the event, or None when no endpoint wants it (then nothing
    is stored)."""
    events = webhook_events_emit(events=[Emit(org.pk if org else None, type, data)])
    return events[0] if events else None


def webhook_events_emit(*, events: Sequence[Emit]) -> list[WebhookEvent]:
    """``webhook_event_emit`` for many events in a few queries (an invoice run finalizes
    thousands at once). Returns the events stored (those some endpoint wants)."""
    for event in events:
        if event.type not in EventType.values:
            raise ValueError(f"unknown webhook event type {event.type!r}")
    org_ids = {e.org_id for e in events if e.org_id is not None}
    endpoints = list(
        WebhookEndpoint.objects.filter(Q(org__isnull=True) | Q(org_id__in=org_ids)).exclude(
            status=WebhookEndpoint.Status.DISABLED
        )
    )
    if not endpoints:
        return []
    now = timezone.now()
    stored: list[tuple[WebhookEvent, list[WebhookEndpoint]]] = []
    for event in events:
        targets = [
            e
            for e in endpoints
            if e.wants(event.type) and (e.org_id is None or e.org_id == event.org_id)
        ]
        if targets:
            row = WebhookEvent(
                org_id=event.org_id,
                msg_id=f"msg_{secrets.token_urlsafe(18)}",
                type=event.type,
                # JSON-safe as stored and sent: Decimal and dates as their exact strings.
                data=json.loads(json.dumps(event.data, cls=DjangoJSONEncoder)),
                created_at=now,
            )
            stored.append((row, targets))
    WebhookEvent.objects.bulk_create([row for row, _ in stored])
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            org_id=endpoint.org_id,
            event=row,
            endpoint=endpoint,
            next_attempt_at=now,
            created_at=now,
        )
        for row, targets in stored
        for endpoint in targets
    )
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: _enqueue(ids), robust=True)
    return [row for row, _ in stored]


def _enqueue(delivery_ids: Sequence[int], countdown: float | None = None) -> None:
    from .tasks import deliver

    for pk in delivery_ids:
        if countdown is None:
            deliver.delay(pk)
        else:
            deliver.apply_async((pk,), countdown=countdown)


# --- attempts -------------------------------------------------------------------------------


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
    other answer or none is retried after ``backoff`` until ``TESSERA_WEBHOOK_MAX_ATTEMPTS``,
    then the delivery fails and its endpoint is marked failing. Idempotent per attempt."""
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
    retry_in: float | None = None
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
        retry_in = backoff(delivery.attempts)
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=retry_in)
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
    if retry_in is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        # In-process Celery ignores countdowns: there the retry waits for `deliver_webhooks`
        # (or beat's `webhooks.deliver_due`), which sends what is due.
        pk, countdown = delivery.pk, retry_in
        transaction.on_commit(lambda: _enqueue([pk], countdown=countdown), robust=True)
    return delivery


@transaction.atomic
def webhook_delivery_replay(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, whatever its state (a receiver lost it, or it failed while
    the endpoint was down), with the same ``webhook-id`` and a full set of attempts."""
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=Status.PENDING, attempts=0, next_attempt_at=now, replayed_at=now
    )
    delivery.refresh_from_db()
    pk = delivery.pk
    transaction.on_commit(lambda: _enqueue([pk]), robust=True)
    return delivery


def deliveries_due(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Pending deliveries whose attempt is due (lost tasks, or retries in in-process mode)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
