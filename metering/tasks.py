from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from . import metrics, partitions
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


@shared_task(name="metering.partitions_ensure", acks_late=True)
def partitions_ensure() -> list[str]:
    """Create the event partitions of the coming days (metering/partitions.py); a failure is
    counted and raised, and the next hourly run tries again."""
    try:
        return partitions.partitions_ensure()
    except Exception:
        metrics.TASK_FAILURES.labels(task="metering.partitions_ensure").inc()
        raise


@shared_task(name="metering.retention", acks_late=True)
def retention() -> list[str]:
    """Export expired event partitions to Parquet and drop them (metering/partitions.py). A
    partition that fails is kept, logged and counted as a task failure; the others go."""
    try:
        report = partitions.retention_run(directory=settings.TESSERA_RETENTION_DIR)
    except partitions.PartitionError as exc:
        if exc.code == "retention_running":  # a run by hand is on it: nothing to do
            return []
        metrics.TASK_FAILURES.labels(task="metering.retention").inc()
        raise
    except Exception:
        metrics.TASK_FAILURES.labels(task="metering.retention").inc()
        raise
    if report.failed:
        metrics.TASK_FAILURES.labels(task="metering.retention").inc()
    return report.dropped


def schedule_rollup() -> None:
    """Ask for a rollup soon after this transaction commits, at most once per debounce window."""
    if not getattr(settings, "TESSERA_ROLLUP_ON_INGEST", True):
        return
    if cache.add("tessera:rollup-scheduled", 1, timeout=ROLLUP_DEBOUNCE_SECONDS):
        transaction.on_commit(rollup.delay)
