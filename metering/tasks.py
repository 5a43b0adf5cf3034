from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from . import metrics
from .rollups import rollup_pending

# At most one rollup is enqueued per this many seconds by ingestion; beat covers the rest.
ROLLUP_DEBOUNCE_SECONDS = 5


@shared_task(name="metering.rollup", acks_late=True)
def rollup() -> int:
    try:
        return rollup_pending()
    except Exception:
        metrics.TASK_FAILURES.labels(task="metering.rollup").inc()
        raise


def schedule_rollup() -> None:
    """Ask for a rollup soon after this transaction commits, at most once per debounce window."""
    if not getattr(settings, "TESSERA_ROLLUP_ON_INGEST", True):
        return
    if cache.add("tessera:rollup-scheduled", 1, timeout=ROLLUP_DEBOUNCE_SECONDS):
        transaction.on_commit(rollup.delay)
