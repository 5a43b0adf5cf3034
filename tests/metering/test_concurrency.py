"""Ingestion and rollup racing each other on PostgreSQL: nothing lost, nothing counted twice."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from metering.ingestion import Ingestor
from metering.models import HourlyRollup, UsageEvent
from metering.rollups import rollup_pending
from tenancy.models import ApiKey
from tenancy.services import api_key_create

from ..conftest import make_event
from ..factories import MeterFactory, OrgFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=40)


def _run_threads(targets: list) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrap(target):
        def run():
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                errors.append(exc)
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def test_concurrent_overlapping_batches_and_rollups_lose_and_double_nothing():
    OrgFactory.create(slug="acme")
    MeterFactory.create(key="gpu_time", group_by={"gpu_model": "$.gpu_model"})
    key_id = api_key_create(name="c").api_key.pk
    events = [
        make_event(
            id=f"e{i}",
            time=START + timedelta(minutes=7 * i),
            data={"gpu_seconds": str(i % 60 + 1), "gpu_model": "H100"},
        )
        for i in range(300)
    ]
    done = threading.Event()

    def sender(offset: int):
        def send():
            key = ApiKey.objects.get(pk=key_id)
            # Every sender posts every event, in its own order and batch size: heavy overlap.
            ordered = events[offset:] + events[:offset]
            size = 20 + offset
            for i in range(0, len(ordered), size):
                Ingestor(api_key=key).ingest(ordered[i : i + size])

        return send

    def roller():
        try:
            while not done.is_set():
                rollup_pending(batch_hours=3)
        finally:
            connection.close()

    roll = threading.Thread(target=roller)
    roll.start()
    try:
        errors = _run_threads([sender(o) for o in (0, 37, 111, 250)])
    finally:
        done.set()
        roll.join(timeout=120)
        connection.close()
    rollup_pending()

    assert errors == []
    assert UsageEvent.objects.count() == 300
    expected = sum(Decimal(e["data"]["gpu_seconds"]) for e in events)
    assert HourlyRollup.objects.aggregate(total=Sum("value"))["total"] == expected
    assert HourlyRollup.objects.aggregate(n=Sum("event_count"))["n"] == 300
