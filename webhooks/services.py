"""Webhook writes: endpoints, secret rotation, emitting events, replaying (attempts are
``webhooks.delivery``'s).

Emitting is an outbox: ``webhook_event_emit`` stores the event and one delivery per
subscribed endpoint in the caller's transaction and enqueues the deliveries on commit, so an
event goes out if and only if the change it reports committed.
"""

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tenancy.models import Org

from .addresses import endpoint_url_check
from .errors import WebhookError
from .lock_objects import lock_endpoint
from .models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookSecret
from .signing import new_secret
from .tasks import deliveries_enqueue_on_commit

Status = WebhookDelivery.Status


# --- endpoints ------------------------------------------------------------------------------


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
    lock_endpoint(endpoint_id=endpoint.pk)
    WebhookSecret.objects.filter(endpoint=endpoint, expires_at__gt=now).update(expires_at=now)
    WebhookSecret.objects.filter(endpoint=endpoint, expires_at__isnull=True).update(
        expires_at=now + overlap
    )
    return WebhookSecret.objects.create(
        org_id=endpoint.org_id, endpoint=endpoint, secret=new_secret(), created_at=now
    )


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
    deliveries_enqueue_on_commit(delivery_ids=[d.pk for d in deliveries])
    return [row for row, _ in stored]


@transaction.atomic
def webhook_delivery_replay(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, whatever its state (a receiver lost it, or it failed while
    the endpoint was down), with the same ``webhook-id`` and a full set of attempts."""
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=Status.PENDING, attempts=0, next_attempt_at=now, replayed_at=now
    )
    delivery.refresh_from_db()
    deliveries_enqueue_on_commit(delivery_ids=[delivery.pk])
    return delivery
