"""Daily event partitions on PostgreSQL, identity across them, and retention
(metering/partitions.py and its commands and tasks)."""

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, connections
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from metering import ingestion, metrics, partitions, tasks
from metering.ingestion import Ingestor
from metering.models import UsageEvent, UsageEventKey
from metering.partitions import (
    DEFAULT,
    PartitionError,
    partition_name,
    partitions_ensure,
    partitions_list,
    retention_run,
)
from tenancy.models import ApiKey, Org
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


def test_a_repeat_is_compared_by_its_own_event_not_by_reading_the_orgs_other_events(db):
    """Judging repeats reads a bounded number of pages per repeat, whatever the org stores:
    the key by its identity, then the event by its whole (org, type, time) index key, even in
    tables not analyzed yet (issue 18: it hashed the whole key table and scanned all the org's
    index entries for each repeat, so a retry storm cost more the bigger the customer)."""
    key = api_key_create(name="collector").api_key
    partitions_ensure(now=NOW, ahead_days=1)
    start = NOW - timedelta(hours=3)
    events = [make_event(id=f"e{n}", time=start + timedelta(seconds=n)) for n in range(3000)]
    for first in range(0, len(events), 1000):
        assert ingest(key, *events[first : first + 1000])["accepted"] == 1000
    ingestor = Ingestor(api_key=key, now=NOW)
    orgs = ingestor._orgs(["acme"])
    rows = [ingestor._plain(event, orgs, n) for n, event in enumerate(events[::150])]
    assert len(rows) == 20
    assert None not in rows
    repeats = cast(list[ingestion._Valid], rows)

    assert ingestion._same_as_stored(repeats) == set(range(20))
    columns = ("namespace", "source", "event_id", "type", "time", "data_json")
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + ingestion._SAME_AS_STORED_POSTGRESQL,
            ingestion._arrays(repeats, *columns),
        )
        (explained,) = cast(tuple[Any], cursor.fetchone())
    plan = explained[0]["Plan"]
    pages = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
    # 6 per repeat here: the key's index and row, the event's index and row. The plain join
    # read 445 (22 per repeat), and more for every event the org stores.
    assert pages <= 12 * len(repeats), json.dumps(plan, indent=1)


@pytest.mark.parametrize("ahead", ["-1", "367", "100000000"])
def test_days_ahead_out_of_range_is_a_usage_error(db, ahead):
    with pytest.raises(CommandError, match=r"--ahead must be between 0 and 366"):
        call_command("event_partitions", "--ahead", ahead)
    assert partitions_list() == []


# Retention: a day whose partition ends before the cutoff (late window + extra days).
OLD = datetime(2026, 6, 1, 10, tzinfo=UTC)
LATER = OLD + timedelta(days=200)


def old_events(*ids: str, day: datetime = OLD) -> None:
    """Events of ``day``, ingested while it was recent, and their day's partitions."""
    key = api_key_create(name="collector").api_key
    now = day + timedelta(hours=1)
    partitions_ensure(now=now, ahead_days=1)
    events = [make_event(id=i, time=day + timedelta(minutes=n)) for n, i in enumerate(ids)]
    assert Ingestor(api_key=key, now=now).ingest(events).as_dict()["accepted"] == len(ids)
    with connection.cursor() as cursor:  # as if committed: no deferred FK check holds a DROP
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def manifest(directory: Path) -> dict[str, dict]:
    entries = json.loads((directory / "manifest.json").read_text())["partitions"]
    return {e["file"]: e for e in entries}


def ids_in(path: Path) -> list[str]:
    return pq.read_table(path).column("event_id").to_pylist()


@pytest.mark.parametrize("where", ["a-file", "a-file/sub", ""])
def test_an_unusable_archive_directory_is_a_usage_error(db, settings, tmp_path, where):
    settings.TESSERA_RETENTION_DIR = tmp_path / "default"
    old_events("e1")
    (tmp_path / "a-file").write_text("not a directory")
    before = partitions_list()

    with pytest.raises(CommandError, match=r"--dir"):
        call_command("event_retention", "--dir", str(tmp_path / where) if where else "")
    assert partitions_list() == before
    assert UsageEvent.objects.count() == 1


def test_an_unreadable_manifest_is_a_usage_error_and_nothing_is_dropped(db, tmp_path):
    old_events("e1")
    (tmp_path / "manifest.json").write_text('{"partitions": [')
    before = partitions_list()

    with pytest.raises(CommandError, match=r"manifest\.json"):
        call_command("event_retention", "--dir", str(tmp_path))
    assert partitions_list() == before
    assert (tmp_path / "manifest.json").read_text() == '{"partitions": ['


def test_a_retention_shorter_than_the_late_window_is_refused(db, settings, tmp_path):
    old_events("e1", day=LATER - timedelta(days=settings.TESSERA_LATE_WINDOW_DAYS - 1))
    settings.TESSERA_RETENTION_EXTRA_DAYS = -5
    before = partitions_list()

    with pytest.raises(PartitionError, match="TESSERA_RETENTION_EXTRA_DAYS"):
        retention_run(directory=tmp_path, now=LATER)
    assert partitions_list() == before
    assert UsageEvent.objects.count() == 1


def test_a_partition_that_cannot_be_dropped_is_kept_and_the_others_go(db, settings, tmp_path):
    old_events("e1")
    old_events("e2", day=OLD + timedelta(days=1))
    stuck = partition_name(OLD.date())
    with connection.cursor() as cursor:  # something depends on it: its DROP fails
        cursor.execute(f"CREATE VIEW stuck_view AS SELECT * FROM {stuck}")
    failures = metrics.TASK_FAILURES.labels(task="metering.retention")
    before = failures._value.get()

    report = retention_run(directory=tmp_path, now=LATER)

    assert list(report.failed) == [stuck]
    assert "other objects depend on it" in report.failed[stuck]
    assert partition_name(OLD.date() + timedelta(days=1)) in report.dropped
    assert stuck not in report.dropped
    assert [p.name for p in partitions_list() if p.end <= report.cutoff] == [stuck]
    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == ["e1"]
    # The command says which partition stayed and exits non-zero; the task counts a failure.
    with pytest.raises(CommandError, match=stuck):
        call_command("event_retention", "--dir", str(tmp_path))
    settings.TESSERA_RETENTION_DIR = tmp_path
    tasks.retention()
    assert failures._value.get() == before + 1

    # Once the dependency is gone, the next run exports it again (same file) and drops it.
    with connection.cursor() as cursor:
        cursor.execute("DROP VIEW stuck_view")
    again = retention_run(directory=tmp_path, now=LATER)
    assert again.failed == {}
    assert again.dropped == [stuck]
    assert UsageEvent.objects.count() == 0
    entries = manifest(tmp_path)
    assert entries[f"{stuck}.parquet"]["rows"] == 1
    assert [e["file"] for e in entries.values() if e["partition"] == stuck] == [f"{stuck}.parquet"]
    assert ids_in(tmp_path / f"{stuck}.parquet") == ["e1"]


def test_a_partition_exported_earlier_keeps_its_archive_when_its_day_comes_back(db, tmp_path):
    old_events("e1", "e2")
    name = partition_name(OLD.date())
    assert name in retention_run(directory=tmp_path, now=LATER).dropped
    first = (tmp_path / f"{name}.parquet").read_bytes()
    # Later the day is stored again (a longer late window, a restore, a manual load)…
    old_events("e3")

    report = retention_run(directory=tmp_path, now=LATER)

    # …its new rows go to a file of their own: the earlier archive is not overwritten.
    assert name in report.dropped
    assert (tmp_path / f"{name}.parquet").read_bytes() == first
    assert ids_in(tmp_path / f"{name}.parquet") == ["e1", "e2"]
    assert ids_in(tmp_path / f"{name}.2.parquet") == ["e3"]
    entries = manifest(tmp_path)
    assert (entries[f"{name}.parquet"]["rows"], entries[f"{name}.2.parquet"]["rows"]) == (2, 1)
    assert {entries[f"{name}.parquet"]["partition"], entries[f"{name}.2.parquet"]["partition"]} == {
        name
    }


def test_the_partitions_task_counts_a_failure(db, monkeypatch):
    def broken(**kwargs: object) -> list[str]:
        raise RuntimeError("disk full")

    monkeypatch.setattr("metering.partitions.partitions_ensure", broken)
    failures = metrics.TASK_FAILURES.labels(task="metering.partitions_ensure")
    before = failures._value.get()
    with pytest.raises(RuntimeError):
        tasks.partitions_ensure()
    assert failures._value.get() == before + 1


def test_the_archive_is_on_disk_before_its_partition_is_dropped(db, tmp_path, monkeypatch):
    old_events("e1")
    name = partition_name(OLD.date())
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert name in retention_run(directory=tmp_path, now=LATER).dropped
    # The file, the manifest (before it replaces the old one) and the directory's entries.
    archive, manifest_tmp = tmp_path / f"{name}.parquet", tmp_path / "manifest.tmp"
    assert {str(archive), str(manifest_tmp), str(tmp_path)} <= set(synced)


def test_a_partition_is_exported_in_batches_not_held_in_memory_whole(db, tmp_path, monkeypatch):
    # A day at full rate holds millions of rows: they are streamed, BATCH_ROWS at a time.
    monkeypatch.setattr(partitions, "BATCH_ROWS", 2)
    old_events("e1", "e2", "e3", "e4", "e5")
    name = partition_name(OLD.date())

    assert name in retention_run(directory=tmp_path, now=LATER).dropped

    archive = pq.ParquetFile(tmp_path / f"{name}.parquet")
    assert archive.metadata.num_row_groups == 3
    assert ids_in(tmp_path / f"{name}.parquet") == ["e1", "e2", "e3", "e4", "e5"]
    entry = manifest(tmp_path)[f"{name}.parquet"]
    assert entry["rows"] == 5
    written = (tmp_path / f"{name}.parquet").read_bytes()
    assert entry["sha256"] == hashlib.sha256(written).hexdigest()


def test_an_archive_is_checked_against_its_partition_in_batches(db, tmp_path, monkeypatch):
    # Whether an existing archive still matches its partition is read BATCH_ROWS ids at a
    # time: a retry after a failed drop rewrites the same file, a day come back gets a new one.
    monkeypatch.setattr(partitions, "BATCH_ROWS", 2)
    old_events("e1", "e2", "e3", "e4", "e5")
    name = partition_name(OLD.date())
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE VIEW stuck_view AS SELECT * FROM {name}")
    assert name in retention_run(directory=tmp_path, now=LATER).failed
    with connection.cursor() as cursor:
        cursor.execute("DROP VIEW stuck_view")

    assert name in retention_run(directory=tmp_path, now=LATER).dropped
    assert sorted(p.name for p in tmp_path.glob(f"{name}*.parquet")) == [f"{name}.parquet"]
    assert ids_in(tmp_path / f"{name}.parquet") == ["e1", "e2", "e3", "e4", "e5"]

    old_events("e6")
    assert name in retention_run(directory=tmp_path, now=LATER).dropped
    assert ids_in(tmp_path / f"{name}.2.parquet") == ["e6"]


@pytest.mark.django_db(transaction=True)
def test_events_stored_while_a_day_is_being_created_wait_for_its_partition(monkeypatch):
    # Upgrading a live deployment: today's events go to the default partition until today's
    # partition exists, and keep coming while partitions_ensure moves them out.
    org_id = Org.objects.get(slug="acme").pk
    partitions_ensure(now=NOW, ahead_days=0)
    day = NOW + timedelta(days=30)  # the one day missing
    other = connections.create_connection("default")
    insert = (
        "INSERT INTO metering_usageevent (org_id, namespace, source, event_id, type, time, "
        "data, content_hash, received_at) VALUES (%s, 'platform', 'n', %s, 'gpu.usage', %s, "
        "'{}', 'h', now())"
    )
    with other.cursor() as cursor:
        cursor.execute(insert, [org_id, "before", day])
    raced: list[str] = []

    class Racing:  # another writer stores an event of the day just before the ATTACH
        def __init__(self, cursor: Any) -> None:
            self.cursor = cursor

        def execute(self, sql: str, params: Any = None) -> Any:
            if "ATTACH PARTITION" in sql and params[0].date() == day.date():
                try:
                    with other.cursor() as cursor:
                        cursor.execute("SET lock_timeout = '50ms'")  # (it would wait)
                        cursor.execute(insert, [org_id, "during", day])
                    raced.append("stored")
                except OperationalError:
                    raced.append("waited")
            return self.cursor.execute(sql, params)

    real_create = partitions._create
    monkeypatch.setattr(
        partitions, "_create", lambda cur, d: real_create(cast(CursorWrapper, Racing(cur)), d)
    )
    try:
        created = partitions_ensure(now=NOW, ahead_days=0)
        with other.cursor() as cursor:  # the writer's retry, once the partition is there
            cursor.execute(insert, [org_id, "after", day])
    finally:
        other.close()

    assert raced == ["waited"]
    assert created == [partition_name(day.date())]
    assert rows_in(DEFAULT) == 0
    assert rows_in(partition_name(day.date())) == 2


def test_one_retention_run_at_a_time(db, settings, tmp_path):
    old_events("e1")
    before = partitions_list()
    settings.TESSERA_RETENTION_DIR = tmp_path
    failures = metrics.TASK_FAILURES.labels(task="metering.retention")
    counted = failures._value.get()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:  # a run by hand holds the retention
            cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [partitions.RETENTION_LOCK])
        with pytest.raises(CommandError, match="another event retention run is going on"):
            call_command("event_retention", "--dir", str(tmp_path))
        assert tasks.retention() == []  # the daily task leaves it to that run
        assert partitions_list() == before
        assert not (tmp_path / "manifest.json").exists()
        assert failures._value.get() == counted
    finally:
        other.close()
    # Once it is over, the next run goes ahead.
    assert partition_name(OLD.date()) in retention_run(directory=tmp_path, now=LATER).dropped


def test_a_partition_attached_by_hand_is_left_alone(db, tmp_path):
    old_events("e1")
    with connection.cursor() as cursor:  # e.g. an old year restored from its archive
        cursor.execute("CREATE TABLE restored_2020 (LIKE metering_usageevent INCLUDING DEFAULTS)")
        cursor.execute(
            "ALTER TABLE metering_usageevent ATTACH PARTITION restored_2020 "
            "FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')"
        )

    assert partition_name(OLD.date()) in retention_run(directory=tmp_path, now=LATER).dropped
    assert partitions_ensure(now=LATER + timedelta(days=1), ahead_days=7)
    assert "restored_2020" not in {p.name for p in partitions_list()}
    assert rows_in("restored_2020") == 0  # still there, still attached


def test_a_day_that_cannot_be_created_does_not_hold_back_the_others(db, settings):
    settings.TESSERA_LATE_WINDOW_DAYS = 1
    today = timezone.now().date()
    stuck = partition_name(today + timedelta(days=1))
    with connection.cursor() as cursor:  # a table of its name is left over (detached by hand)
        cursor.execute(f"CREATE TABLE {stuck} (LIKE metering_usageevent)")

    with pytest.raises(PartitionError, match=f"3 partition\\(s\\) created; .*{stuck}"):
        partitions_ensure(ahead_days=2)

    days = [today + timedelta(days=n) for n in (-1, 0, 2)]
    assert [p.name for p in partitions_list()] == [partition_name(day) for day in days]
    with pytest.raises(CommandError, match=f"0 partition\\(s\\) created; .*{stuck}"):
        call_command("event_partitions", "--ahead", "2")
