from celery import shared_task
from django.db import transaction

from metering import metrics

from .emails import alert_email_send


@shared_task(name="billing.alerts.send_email", acks_late=True)
def send_alert_email(firing_id: int) -> None:
    """Email one alert firing (skipped when it was emailed already)."""
    try:
        alert_email_send(firing_id=firing_id)
    except Exception:
        metrics.TASK_FAILURES.labels(task="billing.alerts.send_email").inc()
        raise


def alert_email_on_commit(*, firing_id: int) -> None:
    """Once the caller's transaction commits, enqueue the firing's email. Robust: a broker
    failure is logged, never undoes the firing (which the portal shows all the same)."""

    def enqueue_alert_email() -> None:
        send_alert_email.delay(firing_id)

    transaction.on_commit(enqueue_alert_email, robust=True)
