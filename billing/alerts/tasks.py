from celery import shared_task

from metering import metrics

from .services import alert_email_send, alerts_evaluate_all


@shared_task(name="billing.alerts.send_email", acks_late=True)
def send_alert_email(firing_id: int) -> None:
    """Email one alert firing (skipped when it was emailed already)."""
    try:
        alert_email_send(firing_id=firing_id)
    except Exception:
        metrics.TASK_FAILURES.labels(task="billing.alerts.send_email").inc()
        raise


@shared_task(name="billing.alerts.evaluate_all", acks_late=True)
def evaluate_all() -> int:
    """Beat's backstop: evaluate every org's alerts against its current period."""
    fired, _ = alerts_evaluate_all()
    return fired
