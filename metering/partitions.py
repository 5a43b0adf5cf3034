"""The raw event store on PostgreSQL: daily range partitions of ``metering_usageevent`` by
``time``, created ahead, and retention (export to Parquet, then drop by partition). SPEC §8.

Why not a tool: ``django-postgres-extra``'s partitioning manager needs its own database
backend (``psqlextra.backend``) and model base classes, which would take the SQLite embedded
default away; ``pg_partman`` is a server extension that neither the embedded default nor a
managed PostgreSQL can be assumed to have. What a partition manager does here is small
(create a range partition, move stray rows out of the default partition, detach and drop),
so it is plain declarative partitioning, in this module only.

Identity (SPEC §3: ``(namespace, source, id)`` is one event whatever its time) cannot be a
unique index of a partitioned table unless the index holds ``time``, so it lives in an
unpartitioned key table, ``metering_usage_event_key`` (primary key ``(namespace, source,
event_id)``, with the event's ``time`` and ``org_id``). Ingestion inserts the key first and
the event only where the key was new, in one statement: a duplicate across a partition
boundary is still a duplicate. Keys are pruned only together with their events' partitions,
long after the late window closes, so dedup holds for the whole late window.

On SQLite (the embedded default) none of this applies: the table is one table with its unique
constraint, and every function here returns without doing anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

EVENTS = "metering_usageevent"
DEFAULT = "metering_usageevent_default"
KEYS = "metering_usage_event_key"


def is_partitioned() -> bool:
    """Whether the event table is partitioned (PostgreSQL after migration 0007)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [EVENTS]
        )
        return cursor.fetchone() is not None


def partition_name(day: date) -> str:
    return f"{EVENTS}_p{day:%Y%m%d}"


@dataclass(frozen=True)
class Partition:
    """One daily partition: rows with ``start <= time < end`` (aware UTC)."""

    name: str
    start: datetime
    end: datetime


def partitions_list() -> list[Partition]:
    """The daily partitions that exist, oldest first (not the default partition)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND c.relname <> %s ORDER BY c.relname",
            [EVENTS, DEFAULT],
        )
        names = [name for (name,) in cursor.fetchall()]
    found = []
    for name in names:
        day = datetime.strptime(name.rsplit("_p", 1)[1], "%Y%m%d").replace(tzinfo=UTC)
        found.append(Partition(name, day, day + timedelta(days=1)))
    return found


def _create(cursor: CursorWrapper, day: date) -> None:
    """Create the partition of ``day``, moving its rows out of the default partition first
    (PostgreSQL refuses to attach a range that the default partition still holds rows of)."""
    name = partition_name(day)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    cursor.execute(f"CREATE TABLE {name} (LIKE {EVENTS} INCLUDING DEFAULTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT} WHERE time >= %s AND time < %s RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved",
        [start, end],
    )
    cursor.execute(
        f"ALTER TABLE {EVENTS} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
        [start, end],
    )


def partitions_ensure(*, now: datetime | None = None, ahead_days: int | None = None) -> list[str]:
    """Create the daily partitions from the start of the late window through ``ahead_days``
    after ``now`` (setting ``TESSERA_PARTITION_AHEAD_DAYS``), and one for every day that has
    rows in the default partition. Idempotent; returns the names created. No-op on SQLite."""
    if not is_partitioned():
        return []
    now = now or timezone.now()
    ahead = settings.TESSERA_PARTITION_AHEAD_DAYS if ahead_days is None else ahead_days
    first = (now - timedelta(days=settings.TESSERA_LATE_WINDOW_DAYS)).date()
    wanted = {first + timedelta(days=n) for n in range((now.date() - first).days + ahead + 1)}
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        # One creator at a time (beat and the command may overlap).
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [EVENTS])
        cursor.execute(f"SELECT DISTINCT (time AT TIME ZONE 'UTC')::date FROM {DEFAULT}")
        wanted |= {day for (day,) in cursor.fetchall()}
        have = {p.name for p in partitions_list()}
        for day in sorted(wanted):
            if partition_name(day) not in have:
                _create(cursor, day)
                created.append(partition_name(day))
    return created


@dataclass
class RetentionReport:
    cutoff: datetime
    exported: list[dict[str, object]] = field(default_factory=list)

    @property
    def dropped(self) -> list[str]:
        return [str(item["partition"]) for item in self.exported]


def retention_cutoff(now: datetime | None = None) -> datetime:
    """Raw events before this instant may go: the late window plus
    ``TESSERA_RETENTION_EXTRA_DAYS`` (default 60), at a UTC midnight."""
    now = now or timezone.now()
    days = settings.TESSERA_LATE_WINDOW_DAYS + settings.TESSERA_RETENTION_EXTRA_DAYS
    moment = now - timedelta(days=days)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _export(name: str, directory: Path) -> dict[str, object]:
    """Write partition ``name`` to ``<directory>/<name>.parquet`` (zstd); its manifest entry."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [
        "id",
        "org_id",
        "namespace",
        "source",
        "event_id",
        "type",
        "time",
        "data",
        "content_hash",
        "received_at",
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, org_id, namespace, source, event_id, type, time, data::text, "
            f"content_hash, received_at FROM {name} ORDER BY id"
        )
        rows = cursor.fetchall()
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("org_id", pa.int64()),
            ("namespace", pa.string()),
            ("source", pa.string()),
            ("event_id", pa.string()),
            ("type", pa.string()),
            ("time", pa.timestamp("us", tz="UTC")),
            ("data", pa.string()),  # the stored JSON text: numbers stay exact
            ("content_hash", pa.string()),
            ("received_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    table = pa.Table.from_pylist([dict(zip(columns, row, strict=True)) for row in rows], schema)
    path = directory / f"{name}.parquet"
    pq.write_table(table, path, compression="zstd")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "partition": name,
        "file": path.name,
        "rows": len(rows),
        "sha256": digest,
        "bytes": path.stat().st_size,
    }


def retention_run(*, directory: Path, now: datetime | None = None) -> RetentionReport:
    """Export every daily partition that ends on or before the cutoff to
    ``<directory>/<partition>.parquet`` and add it to ``<directory>/manifest.json`` (rows,
    sha256, bytes per file), then drop the partition and prune its identity keys. Rollups,
    rated charges and invoices are not touched (rating reads rollups, SPEC §4). A partition is
    dropped only after its file is written and the manifest lists it. No-op on SQLite."""
    cutoff = retention_cutoff(now)
    report = RetentionReport(cutoff=cutoff)
    if not is_partitioned():
        return report
    partitions_ensure(now=now)  # stray old rows leave the default partition for their day's
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    manifest = (
        json.loads(manifest_path.read_text()) if manifest_path.exists() else {"partitions": []}
    )
    for partition in partitions_list():
        if partition.end > cutoff:
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {partition.name} IN ACCESS EXCLUSIVE MODE")
            entry = _export(partition.name, directory)
            entry.update(start=partition.start.isoformat(), end=partition.end.isoformat())
            manifest["partitions"] = [
                e for e in manifest["partitions"] if e["partition"] != partition.name
            ] + [entry]
            tmp = manifest_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
            tmp.replace(manifest_path)
            cursor.execute(f"ALTER TABLE {EVENTS} DETACH PARTITION {partition.name}")
            cursor.execute(f"DROP TABLE {partition.name}")
            cursor.execute(
                f"DELETE FROM {KEYS} WHERE time >= %s AND time < %s",
                [partition.start, partition.end],
            )
        report.exported.append(entry)
    return report
