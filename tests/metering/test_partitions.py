"""Daily event partitions on PostgreSQL, and identity across them (metering/partitions.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from metering.ingestion import Ingestor
from metering.models import UsageEvent, UsageEventKey
from metering.partitions import DEFAULT, partition_name, partitions_ensure, partitions_list
from tenancy.models import ApiKey
from tenancy.services import api_key_create

from ..conftest import make_event, vendor

pytestmark = [
    pytest.mark.usefixtures("gpu_meter", "org"),
    pytest.mark.skipif(vendor() != "postgresql", reason="partitioning is PostgreSQL only"),
]

NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)


def rows_in(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def ingest(key: ApiKey, *events: dict) -> dict:
    return Ingestor(api_key=key, now=NOW).ingest(list(events)).as_dict()


def test_command_creates_the_late_window_and_the_days_ahead(db, settings):
    settings.TESSERA_LATE_WINDOW_DAYS = 3
    created = partitions_ensure(now=NOW, ahead_days=2)

    days = [NOW.date() + timedelta(days=n) for n in range(-3, 3)]
    assert created == [partition_name(day) for day in days]
    assert [p.start.date() for p in partitions_list()] == days
    # idempotent, and the management command does the same
    assert partitions_ensure(now=NOW, ahead_days=2) == []
    call_command("event_partitions", "--ahead", "3")
    assert len(partitions_list()) > len(days)


def test_duplicate_across_a_partition_boundary_is_still_a_duplicate(db, settings):
    settings.TESSERA_LATE_WINDOW_DAYS = 35
    key = api_key_create(name="collector").api_key
    day_one = datetime(2026, 10, 18, 23, 59, 59, tzinfo=UTC)
    original = make_event(id="e1", time=day_one)
    # Stored before its day's partition exists: it lands in the default partition…
    assert ingest(key, original)["accepted"] == 1
    assert rows_in(DEFAULT) == 1
    # …and is moved into its day when the partitions are created.
    partitions_ensure(now=NOW, ahead_days=1)
    assert rows_in(DEFAULT) == 0
    assert rows_in(partition_name(day_one.date())) == 1

    # The same event again: a duplicate, wherever the original lives.
    assert ingest(key, original) == {"accepted": 0, "duplicates": 1, "rejected": 0, "errors": []}
    # The same identity one second later, in the next day's partition: refused, not stored.
    moved = make_event(id="e1", time=day_one + timedelta(seconds=1))
    result = ingest(key, moved)
    assert (result["accepted"], result["rejected"]) == (0, 1)
    assert result["errors"][0]["problems"][0]["code"] == "id_conflict"
    next_day = partition_name(day_one.date() + timedelta(days=1))
    assert rows_in(next_day) == 0
    assert UsageEvent.objects.count() == 1
    assert UsageEventKey.objects.get().time == day_one
