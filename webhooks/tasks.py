from collections.abc import Iterable

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from metering import metrics

from .delivery import deliveries_due, webhook_delivery_attempt
from .models import WebhookDelivery


@shared_task(name="webhooks.deliver", acks_late=True)
def deliver(delivery_id: int) -> None:
    """Attempt one delivery if it is due, then schedule its next attempt after the backoff
    the attempt set (in-process Celery ignores countdowns: there the retry waits for
    ``deliver_webhooks`` or beat's ``webhooks.deliver_due``)."""
    try:
        delivery = webhook_delivery_attempt(delivery_id=delivery_id)
    except Exception:
        metrics.TASK_FAILURES.labels(task="webhooks.deliver").inc()
        raise
    pending = delivery is not None and delivery.status == WebhookDelivery.Status.PENDING
    if pending and delivery and delivery.next_attempt_at and not settings.CELERY_TASK_ALWAYS_EAGER:
        countdown = max(0.0, (delivery.next_attempt_at - timezone.now()).total_seconds())
        deliver.apply_async((delivery.pk,), countdown=countdown)


@shared_task(name="webhooks.deliver_due", acks_late=True)
def deliver_due() -> int:
    """Beat's backstop: enqueue every due delivery (a task lost with its worker)."""
    ids = deliveries_due()
    for pk in ids:
        deliver.delay(pk)
    return len(ids)


def deliveries_enqueue_on_commit(*, delivery_ids: Iterable[int]) -> None:
    """Once the caller's transaction commits, enqueue ``deliver`` for each delivery. Robust:
    a broker failure is logged, never undoes the commit (beat's backstop sends it later)."""
    ids = list(delivery_ids)

    def enqueue_deliveries() -> None:
        for pk in ids:
            deliver.delay(pk)

    if ids:
        transaction.on_commit(enqueue_deliveries, robust=True)
