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
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from core.errors import DomainError, ErrorCode, ErrorKind

from .quarantine import describe

EVENTS = "metering_usageevent"
DEFAULT = "metering_usageevent_default"
KEYS = "metering_usage_event_key"
RETENTION_LOCK = f"{EVENTS} retention"  # a session advisory lock: one retention run at a time
# A year of empty daily partitions ahead is plenty; more is a typo (and past 9999 an overflow).
MAX_AHEAD_DAYS = 366
# Rows per Parquet row group: retention streams a partition in batches of this size (a day
# at full rate holds millions of rows, too many to hold in a worker's memory at once).
BATCH_ROWS = 50_000

logger = logging.getLogger("tessera.partitions")


class PartitionError(DomainError):
    """Partition upkeep or retention refused as asked or configured; nothing was changed."""

    codes = {
        "partitions_ahead": ErrorCode(
            ErrorKind.INVALID, "The days of partitions to create ahead are out of range."
        ),
        "partitions_failed": ErrorCode(
            ErrorKind.CONFLICT, "Some daily partitions could not be created; the others were."
        ),
        "retention_too_short": ErrorCode(
            ErrorKind.INVALID, "The retention would drop events still inside the late window."
        ),
        "archive_unusable": ErrorCode(
            ErrorKind.INVALID, "The archive directory or its manifest cannot be used."
        ),
        "retention_running": ErrorCode(ErrorKind.CONFLICT, "Another retention run is going on."),
    }


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
    """The daily partitions that exist, oldest first: those named by ``partition_name`` (not
    the default partition, nor one an operator attached under another name, left alone)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND c.relname ~ %s ORDER BY c.relname",
            [EVENTS, f"^{EVENTS}_p[0-9]{{8}}$"],
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
    rows in the default partition. Idempotent; returns the names created. No-op on SQLite.
    ``PartitionError`` if ``ahead_days`` is not within 0..``MAX_AHEAD_DAYS``, and, after the
    others are created and committed, if a day could not be (say a table of its name is left
    over): that day alone is skipped, logged and named, and tried again next run."""
    if not is_partitioned():
        return []
    now = now or timezone.now()
    ahead = settings.TESSERA_PARTITION_AHEAD_DAYS if ahead_days is None else ahead_days
    if not 0 <= ahead <= MAX_AHEAD_DAYS:
        raise PartitionError(
            "partitions_ahead",
            f"days ahead must be between 0 and {MAX_AHEAD_DAYS}, not {ahead}",
        )
    first = (now - timedelta(days=settings.TESSERA_LATE_WINDOW_DAYS)).date()
    wanted = {first + timedelta(days=n) for n in range((now.date() - first).days + ahead + 1)}
    with transaction.atomic(), connection.cursor() as cursor:
        # One creator at a time (beat and the command may overlap).
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [EVENTS])
        missing = _missing(cursor, wanted)
        if missing:
            # Writers wait until this commits: an event stored in the default partition after
            # its day's rows were moved out would make the ATTACH fail (as on an upgrade,
            # when today's events keep arriving before today's partition exists).
            cursor.execute(f"LOCK TABLE ONLY {EVENTS} IN SHARE ROW EXCLUSIVE MODE")
            missing = _missing(cursor, wanted)
        created, failed = [], {}
        for day in missing:
            try:
                with transaction.atomic():
                    _create(cursor, day)
            except DatabaseError as exc:
                failed[partition_name(day)] = describe(exc)
                logger.warning("partition %s not created: %s", partition_name(day), exc)
                continue
            created.append(partition_name(day))
    if failed:
        raise PartitionError(
            "partitions_failed",
            f"{len(created)} partition(s) created; not created (tried again next run): "
            + "; ".join(f"{name}: {error}" for name, error in failed.items()),
        )
    return created


def _missing(cursor: CursorWrapper, wanted: set[date]) -> list[date]:
    """The days of ``wanted`` and of rows in the default partition that have no partition."""
    cursor.execute(f"SELECT DISTINCT (time AT TIME ZONE 'UTC')::date FROM {DEFAULT}")
    days = wanted | {day for (day,) in cursor.fetchall()}
    have = {p.name for p in partitions_list()}
    return sorted(day for day in days if partition_name(day) not in have)


@dataclass
class RetentionReport:
    cutoff: datetime
    exported: list[dict[str, object]] = field(default_factory=list)
    # Partitions kept because their export or drop failed: name → error (retried next run).
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def dropped(self) -> list[str]:
        return [str(item["partition"]) for item in self.exported]


def retention_cutoff(now: datetime | None = None) -> datetime:
    """Raw events before this instant may go: the late window plus
    ``TESSERA_RETENTION_EXTRA_DAYS`` (default 60), at a UTC midnight. A negative extra is
    refused (``PartitionError``): it would drop events that may still be re-sent, and with
    their keys the dedup of those re-sends."""
    now = now or timezone.now()
    if settings.TESSERA_RETENTION_EXTRA_DAYS < 0:
        raise PartitionError(
            "retention_too_short",
            f"TESSERA_RETENTION_EXTRA_DAYS is {settings.TESSERA_RETENTION_EXTRA_DAYS}: the "
            "retention must not end inside the late window (0 or more)",
        )
    days = settings.TESSERA_LATE_WINDOW_DAYS + settings.TESSERA_RETENTION_EXTRA_DAYS
    moment = now - timedelta(days=days)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a directory's entries) to disk: the partition is dropped
    only once its archive would survive a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest_read(directory: Path) -> dict[str, list[dict[str, object]]]:
    """The manifest of ``directory`` (created, and checked writable), or an empty one;
    ``PartitionError`` when the directory or the manifest cannot be used."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise PartitionError(
            "archive_unusable", f"{directory}: cannot write archives there ({exc.strerror})"
        ) from None
    path = directory / "manifest.json"
    if not path.exists():
        return {"partitions": []}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        entries = manifest["partitions"]
        if not all(isinstance(e, dict) and "file" in e and "partition" in e for e in entries):
            raise ValueError("an entry without file or partition")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PartitionError(
            "archive_unusable",
            f"{path}: not a manifest of event archives ({describe(exc)}); move it aside",
        ) from None
    return {"partitions": list(entries)}


def _archive_path(cursor: CursorWrapper, name: str, directory: Path) -> Path:
    """``<directory>/<name>.parquet``, unless that file holds rows the partition no longer
    has (its day was exported, dropped and stored again): then ``<name>.2.parquet``, … An
    earlier try whose drop failed left the same rows, so its file is written again."""

    n = 1
    while True:
        path = directory / (f"{name}.parquet" if n == 1 else f"{name}.{n}.parquet")
        if not path.exists():
            return path
        if _holds_only_rows_of(cursor, name, path):
            return path
        n += 1


def _holds_only_rows_of(cursor: CursorWrapper, name: str, path: Path) -> bool:
    """Whether every row id in the archive at ``path`` is still in partition ``name``. Reads the
    ids BATCH_ROWS at a time (a day can hold tens of millions of events) and stops at the first
    batch with a missing one. An archive that cannot be read is not ours to overwrite."""
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=["id"])
    except Exception:  # noqa: BLE001 — not an archive we can read: leave it as it is
        return False
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return True
        except Exception:  # noqa: BLE001 — a damaged archive: leave it as it is
            return False
        ids = batch.column(0).to_pylist()
        cursor.execute(f"SELECT count(*) FROM {name} WHERE id = ANY(%s)", [ids])
        if cursor.fetchone()[0] != len(ids):
            return False


def _export(cursor: CursorWrapper, name: str, directory: Path) -> dict[str, object]:
    """Write partition ``name`` to a zstd Parquet file under ``directory``
    (``_archive_path``); its manifest entry."""
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
    path = _archive_path(cursor, name, directory)
    rows = 0
    with (
        connection.chunked_cursor() as stream,  # server-side: BATCH_ROWS fetched at a time
        pq.ParquetWriter(path, schema, compression="zstd") as writer,
    ):
        stream.execute(
            "SELECT id, org_id, namespace, source, event_id, type, time, data::text, "
            f"content_hash, received_at FROM {name} ORDER BY id"
        )
        while batch := stream.fetchmany(BATCH_ROWS):
            records = [dict(zip(columns, row, strict=True)) for row in batch]
            writer.write_table(pa.Table.from_pylist(records, schema))
            rows += len(batch)
    _fsync(path)
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return {
        "partition": name,
        "file": path.name,
        "rows": rows,
        "sha256": digest,
        "bytes": path.stat().st_size,
    }


def retention_run(*, directory: Path, now: datetime | None = None) -> RetentionReport:
    """Export every daily partition that ends on or before the cutoff to
    ``<directory>/<partition>.parquet`` and add it to ``<directory>/manifest.json`` (rows,
    sha256, bytes per file), then drop the partition and prune its identity keys. Rollups,
    rated charges and invoices are not touched (rating reads rollups, SPEC §4). A partition is
    dropped only after its file is written and the manifest lists it. A partition whose export
    or drop fails is kept, logged and listed in ``failed`` (the next run tries it again); the
    others go on. ``PartitionError``, before anything is changed, when the retention is
    shorter than the late window, the directory or its manifest cannot be used, or another
    run is going on (one at a time: two would drop each other's partitions under them and
    write the manifest over each other). No-op on SQLite."""
    cutoff = retention_cutoff(now)
    report = RetentionReport(cutoff=cutoff)
    if not is_partitioned():
        return report
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [RETENTION_LOCK])
        if not cursor.fetchone()[0]:
            raise PartitionError(
                "retention_running", "another event retention run is going on; try later"
            )
    try:
        return _retention(report, directory=directory, now=now)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [RETENTION_LOCK])


def _retention(
    report: RetentionReport, *, directory: Path, now: datetime | None
) -> RetentionReport:
    cutoff = report.cutoff
    manifest = _manifest_read(directory)
    manifest_path = directory / "manifest.json"
    try:
        partitions_ensure(now=now)  # stray old rows leave the default partition for their day's
    except PartitionError as exc:
        if exc.code != "partitions_failed":
            raise
        # What stays in the default partition is exported once its day's partition exists.
    for partition in partitions_list():
        if partition.end > cutoff:
            continue
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {partition.name} IN ACCESS EXCLUSIVE MODE")
                entry = _export(cursor, partition.name, directory)
                entry.update(start=partition.start.isoformat(), end=partition.end.isoformat())
                manifest["partitions"] = [
                    e for e in manifest["partitions"] if e["file"] != entry["file"]
                ] + [entry]
                tmp = manifest_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
                _fsync(tmp)
                tmp.replace(manifest_path)
                _fsync(directory)
                cursor.execute(f"ALTER TABLE {EVENTS} DETACH PARTITION {partition.name}")
                cursor.execute(f"DROP TABLE {partition.name}")
                cursor.execute(
                    f"DELETE FROM {KEYS} WHERE time >= %s AND time < %s",
                    [partition.start, partition.end],
                )
        except Exception as exc:  # noqa: BLE001 — one partition's failure keeps only it
            report.failed[partition.name] = describe(exc)
            logger.warning("retention of %s failed, partition kept: %s", partition.name, exc)
            continue
        report.exported.append(entry)
    return report
