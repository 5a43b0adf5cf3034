from celery import shared_task

from metering import metrics

from .services import deliveries_due, webhook_delivery_attempt


@shared_task(name="webhooks.deliver", acks_late=True)
def deliver(delivery_id: int) -> None:
    """Attempt one delivery if it is due; the service schedules the retry with its backoff."""
    try:
        webhook_delivery_attempt(delivery_id=delivery_id)
    except Exception:
        metrics.TASK_FAILURES.labels(task="webhooks.deliver").inc()
        raise


@shared_task(name="webhooks.deliver_due", acks_late=True)
def deliver_due() -> int:
    """Beat's backstop: enqueue every due delivery (a task lost with its worker)."""
    ids = deliveries_due()
    for pk in ids:
        deliver.delay(pk)
    return len(ids)
