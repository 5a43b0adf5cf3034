"""Prometheus metrics (SPEC §5: ingest rate, rating lag, task failures, unbilled usage,
quarantined work).

Counters live in the process; set PROMETHEUS_MULTIPROC_DIR under gunicorn so that every
worker's counts are summed. Gauges that describe the database are computed at scrape time.
"""

import os
from collections.abc import Callable, Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .models import RollupMark

EVENTS = Counter("tessera_events_total", "Usage events received, by outcome.", ["outcome"])
TASK_FAILURES = Counter("tessera_task_failures_total", "Celery task failures.", ["task"])
ROLLUP_HOURS = Counter("tessera_rollup_hours_total", "Hours recomputed by the rollup.")


def record_ingest(accepted: int, duplicates: int, rejected: int) -> None:
    for outcome, count in (
        ("accepted", accepted),
        ("duplicate", duplicates),
        ("rejected", rejected),
    ):
        if count:
            EVENTS.labels(outcome=outcome).inc(count)


class DatabaseCollector(Collector):
    """Rollup lag: how long the oldest pending hour has waited, and how many are pending."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = RollupMark.objects.aggregate(oldest=Min("marked_at"), pending=Count("id"))
        lag = (timezone.now() - stats["oldest"]).total_seconds() if stats["oldest"] else 0.0
        yield GaugeMetricFamily(
            "tessera_rollup_lag_seconds", "Age of the oldest hour awaiting rollup.", value=lag
        )
        yield GaugeMetricFamily(
            "tessera_rollup_pending_hours", "Hours awaiting rollup.", value=stats["pending"]
        )
        yield quarantined_gauge()
        for gauge in extra_gauges():
            if isinstance(gauge, GaugeMetricFamily):
                yield gauge
            else:
                name, help_text, value = gauge
                yield GaugeMetricFamily(name, help_text, value=value)


def quarantined_gauge() -> GaugeMetricFamily:
    """Open quarantined units of batch work per kind (SPEC §8), zero for the kinds without."""
    from .quarantine import quarantined_counts

    family = GaugeMetricFamily(
        "tessera_quarantined_work",
        "Units of batch work (rollup hours, org runs) set aside after a failure, not resolved.",
        labels=["kind"],
    )
    for kind, count in quarantined_counts().items():
        family.add_metric([kind], count)
    return family


GaugeFunc = Callable[[], tuple[str, str, float] | GaugeMetricFamily]
_EXTRA: list[GaugeFunc] = []


def register_gauge(func: GaugeFunc) -> None:
    """Other apps (rating) add scrape-time gauges: ``func() -> (name, help, value)``, or a
    whole ``GaugeMetricFamily`` when the gauge has labels."""
    _EXTRA.append(func)


def extra_gauges() -> Iterator[tuple[str, str, float] | GaugeMetricFamily]:
    for func in _EXTRA:
        yield func()


def render() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        for collector in (EVENTS, TASK_FAILURES, ROLLUP_HOURS):
            registry.register(collector)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
