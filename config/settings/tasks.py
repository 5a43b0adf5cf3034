from . import env

# Unset broker: tasks run eagerly in the calling process (the embedded default).
CELERY_BROKER_URL = env.CELERY_BROKER_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not env.CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Tasks are idempotent, so a task lost with its worker is safely run again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
if env.BROKER_KEY_PREFIX:
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env.BROKER_KEY_PREFIX
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "rollup": {"task": "metering.rollup", "schedule": float(env.ROLLUP_INTERVAL_SECONDS)},
    "rate-due": {"task": "billing.rate_due", "schedule": float(env.RATING_INTERVAL_SECONDS)},
    # Drafts the invoices of periods whose grace window has ended.
    "close-periods": {"task": "billing.invoicing.close_periods", "schedule": 3600.0},
    # Moves open invoices past their due date to overdue (receivables, SPEC §5).
    "invoices-overdue": {"task": "billing.invoicing.mark_overdue", "schedule": 3600.0},
    # Retries the Stripe sync of finalized invoices that failed or were never pushed.
    "stripe-sync": {"task": "billing.stripe.sync_pending", "schedule": 300.0},
    # Sends webhook deliveries that are due and whose task was lost.
    "webhooks-due": {"task": "webhooks.deliver_due", "schedule": 60.0},
    # Alerts are evaluated after each rating; this catches what no rating touched.
    "alerts": {
        "task": "billing.alerts.evaluate_all",
        "schedule": float(env.ALERT_INTERVAL_SECONDS),
    },
    # Event partitions (PostgreSQL): create the coming days', export and drop expired ones.
    "event-partitions": {"task": "metering.partitions_ensure", "schedule": 3600.0},
    "event-retention": {"task": "metering.retention", "schedule": 86400.0},
}
# Task modules outside an app's ``tasks.py`` (autodiscovery looks only there).
CELERY_IMPORTS = ["billing.invoicing.tasks", "billing.stripe.tasks", "billing.alerts.tasks"]
