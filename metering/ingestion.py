"""Ingestion of CloudEvents 1.0 usage events (SPEC §3, §5).

Each event is validated on its own; the valid ones are stored in one statement that
deduplicates in the database (``INSERT … ON CONFLICT DO NOTHING RETURNING``), and the hours
they touch are marked for the rollup in the same transaction. A 202 therefore means stored.
"""

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.timeparse import parse_instant
from tenancy.models import ApiKey, Org

from . import metrics
from .models import Meter, RollupMark, UsageEvent
from .paths import lookup, parse_path

REQUIRED = ("specversion", "id", "source", "type", "subject", "time", "data")
MAX_ID_LENGTH = 255
# Stored quantities are numeric(38, 12); anything this large is a bug on the sender's side.
MAX_MAGNITUDE = Decimal("1e20")


@dataclass
class Rejection:
    index: int
    id: str | None
    reasons: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "reasons": self.reasons}


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[Rejection] = field(default_factory=list)

    def reject(self, index: int, event_id: str | None, reasons: list[str]) -> None:
        self.rejected += 1
        self.errors.append(Rejection(index, event_id, reasons))

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": [e.as_dict() for e in sorted(self.errors, key=lambda e: e.index)],
        }


@dataclass
class _Valid:
    index: int
    org_id: int
    source: str
    event_id: str
    type: str
    time: datetime
    data_json: str
    content_hash: str


def canonical_data(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_hash(event: dict[str, Any], data_json: str) -> str:
    """sha256 over the event's attributes and its canonical data: equal iff the events are."""
    attributes = {k: v for k, v in event.items() if k != "data"}
    text = json.dumps(attributes, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{text}\n{data_json}".encode()).hexdigest()


def _parse_time(raw: object) -> tuple[datetime | None, str | None]:
    if not isinstance(raw, str):
        return None, "time must be an RFC 3339 string"
    try:
        return parse_instant(raw, allow_date=False), None
    except ValueError as exc:
        return None, f"time {exc}"


def _number_problem(value: object, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return f"{where} must be a number or a decimal string"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} must be finite"
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return f"{where} {value!r} is not a number"
    if not number.is_finite():
        return f"{where} must be finite"
    if abs(number) >= MAX_MAGNITUDE:
        return f"{where} is out of range (|value| must be below 1e20)"
    return None


class Ingestor:
    """Validates and stores one request's events for one API key."""

    def __init__(self, *, api_key: ApiKey, now: datetime | None = None) -> None:
        self.api_key = api_key
        self.now = now or timezone.now()
        self.oldest = self.now - timedelta(days=settings.TESSERA_LATE_WINDOW_DAYS)
        self.newest = self.now + timedelta(seconds=settings.TESSERA_FUTURE_SKEW_SECONDS)
        self.meters: dict[str, list[tuple[Meter, tuple[str, ...] | None]]] = {}
        for meter in Meter.objects.all():
            path = parse_path(meter.value_path) if meter.value_path else None
            self.meters.setdefault(meter.event_type, []).append((meter, path))

    def ingest(self, events: list[Any]) -> IngestResult:
        result = IngestResult()
        orgs = self._orgs(e.get("subject") for e in events if isinstance(e, dict))
        valid: list[_Valid] = []
        seen: dict[tuple[int, str, str], str] = {}
        for index, event in enumerate(events):
            row, reasons = self._validate(index, event, orgs)
            if row is None:
                event_id = event.get("id") if isinstance(event, dict) else None
                result.reject(index, event_id if isinstance(event_id, str) else None, reasons)
                continue
            key = (row.org_id, row.source, row.event_id)
            earlier = seen.get(key)
            if earlier is None:
                seen[key] = row.content_hash
                valid.append(row)
            elif earlier == row.content_hash:
                result.duplicates += 1
            else:
                result.reject(
                    index, row.event_id, ["id was already used in this batch with other content"]
                )
        if valid:
            with transaction.atomic():
                inserted = _insert(valid, self.now)
                self._classify_conflicts(valid, inserted, result)
                _mark_hours(
                    {(r.org_id, r.type, _hour(r.time)) for r in valid if _key(r) in inserted},
                    self.now,
                )
        metrics.record_ingest(result.accepted, result.duplicates, result.rejected)
        return result

    def _orgs(self, subjects: Iterable[Any]) -> dict[str, int]:
        slugs = {s for s in subjects if isinstance(s, str)}
        if self.api_key.kind == ApiKey.Kind.ORG:
            org = self.api_key.org
            return {org.slug: org.pk} if org and org.slug in slugs else {}
        return dict(Org.objects.filter(slug__in=slugs).values_list("slug", "pk"))

    def _validate(
        self, index: int, event: Any, orgs: dict[str, int]
    ) -> tuple[_Valid | None, list[str]]:
        if not isinstance(event, dict):
            return None, ["event must be a JSON object"]
        reasons = [f"{name} is required" for name in REQUIRED if name not in event]
        spec = event.get("specversion")
        if "specversion" in event and spec != "1.0":
            reasons.append(f"specversion must be '1.0', not {spec!r}")
        for name in ("id", "source", "type", "subject"):
            value = event.get(name)
            if name in event and (not isinstance(value, str) or not value.strip()):
                reasons.append(f"{name} must be a non-empty string")
            elif isinstance(value, str) and len(value) > MAX_ID_LENGTH:
                reasons.append(f"{name} is longer than {MAX_ID_LENGTH} characters")
            elif isinstance(value, str) and "\x00" in value:
                reasons.append(f"{name} must not contain NUL characters")
        content_type = event.get("datacontenttype")
        if content_type is not None and content_type != "application/json":
            reasons.append("datacontenttype must be 'application/json' when given")
        time = None
        if "time" in event:
            time, problem = _parse_time(event["time"])
            if problem:
                reasons.append(problem)
            elif time is not None and time < self.oldest:
                reasons.append(
                    f"time {event['time']} is older than the late window of "
                    f"{settings.TESSERA_LATE_WINDOW_DAYS} days"
                )
            elif time is not None and time > self.newest:
                reasons.append(f"time {event['time']} is more than 5 minutes in the future")
        data = event.get("data")
        if "data" in event and not isinstance(data, dict):
            reasons.append("data must be a JSON object")
        event_type = event.get("type")
        if isinstance(event_type, str) and event_type:
            meters = self.meters.get(event_type)
            if not meters:
                reasons.append(f"type {event_type!r} is not measured by any meter")
            elif isinstance(data, dict):
                reasons.extend(self._check_values(data, meters))
        subject = event.get("subject")
        org_id = orgs.get(subject) if isinstance(subject, str) else None
        if isinstance(subject, str) and subject and org_id is None:
            if self.api_key.kind == ApiKey.Kind.ORG:
                own = self.api_key.org.slug if self.api_key.org else "?"
                reasons.append(f"this key may only report usage for org {own!r}, not {subject!r}")
            else:
                reasons.append(f"subject {subject!r} is not a known org")
        data_json = canonical_data(data) if isinstance(data, dict) else ""
        if "\\u0000" in data_json:
            reasons.append("data must not contain NUL characters")
        if reasons or org_id is None or time is None:
            return None, reasons
        return (
            _Valid(
                index=index,
                org_id=org_id,
                source=event["source"],
                event_id=event["id"],
                type=event_type,  # type: ignore[arg-type]
                time=time,
                data_json=data_json,
                content_hash=canonical_hash(event, data_json),
            ),
            [],
        )

    @staticmethod
    def _check_values(
        data: dict[str, Any], meters: list[tuple[Meter, tuple[str, ...] | None]]
    ) -> list[str]:
        reasons: list[str] = []
        for meter, path in meters:
            if path is None:
                continue
            found, value = lookup(data, path)
            where = f"data{meter.value_path[1:]}"
            problem: str | None
            if not found or value is None:
                problem = f"{where} is required by meter {meter.key!r}"
            elif meter.needs_numeric_value:
                problem = _number_problem(value, where)
            elif isinstance(value, dict | list):
                problem = f"{where} must be a scalar for meter {meter.key!r}"
            else:
                problem = None
            if problem and problem not in reasons:
                reasons.append(problem)
        return reasons

    @staticmethod
    def _classify_conflicts(
        valid: list[_Valid], inserted: set[tuple[int, str, str]], result: IngestResult
    ) -> None:
        conflicts = [row for row in valid if _key(row) not in inserted]
        result.accepted += len(valid) - len(conflicts)
        if not conflicts:
            return
        stored = _stored_hashes(conflicts)
        for row in conflicts:
            if stored.get(_key(row)) == row.content_hash:
                result.duplicates += 1
            else:
                result.reject(
                    row.index,
                    row.event_id,
                    [
                        f"id {row.event_id!r} from source {row.source!r} was already "
                        "accepted with other content; the stored event is unchanged"
                    ],
                )


def _stored_hashes(rows: list[_Valid]) -> dict[tuple[int, str, str], str]:
    """Content hashes of the stored events that share a key with ``rows``."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                f"SELECT e.org_id, e.source, e.event_id, e.content_hash "
                f"FROM {UsageEvent._meta.db_table} e "
                "JOIN unnest(%b::bigint[], %b::text[], %b::text[]) AS k(o, s, i) "
                "ON e.org_id = k.o AND e.source = k.s AND e.event_id = k.i",
                [[r.org_id for r in rows], [r.source for r in rows], [r.event_id for r in rows]],
            )
            return {(int(o), s, i): h for o, s, i, h in cursor.fetchall()}
    return {
        (org_id, source, event_id): content_hash
        for org_id, source, event_id, content_hash in UsageEvent.objects.filter(
            org_id__in={r.org_id for r in rows},
            source__in={r.source for r in rows},
            event_id__in={r.event_id for r in rows},
        ).values_list("org_id", "source", "event_id", "content_hash")
    }


def _key(row: _Valid) -> tuple[int, str, str]:
    return (row.org_id, row.source, row.event_id)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _insert(rows: list[_Valid], now: datetime) -> set[tuple[int, str, str]]:
    """Insert; return the keys actually inserted (the others already existed)."""
    # One key order for every writer, so two overlapping batches cannot deadlock.
    rows = sorted(rows, key=_key)
    if connection.vendor == "postgresql":
        return _insert_postgresql(rows, now)
    table = UsageEvent._meta.db_table
    ops = connection.ops
    received = ops.adapt_datetimefield_value(now)
    inserted: set[tuple[int, str, str]] = set()
    chunk = 500
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for r in part:
                params += [
                    r.org_id,
                    r.source,
                    r.event_id,
                    r.type,
                    ops.adapt_datetimefield_value(r.time),
                    r.data_json,
                    r.content_hash,
                    received,
                ]
            cursor.execute(
                f"INSERT INTO {table} "
                "(org_id, source, event_id, type, time, data, content_hash, received_at) "
                f"VALUES {', '.join(['(%s, %s, %s, %s, %s, %s, %s, %s)'] * len(part))} "
                "ON CONFLICT (org_id, source, event_id) DO NOTHING "
                "RETURNING org_id, source, event_id",
                params,
            )
            inserted.update((int(o), s, e) for o, s, e in cursor.fetchall())
    return inserted


def _insert_postgresql(rows: list[_Valid], now: datetime) -> set[tuple[int, str, str]]:
    """One statement per batch: columns travel as binary arrays, bound server-side."""
    connection.ensure_connection()
    table = UsageEvent._meta.db_table
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            f"INSERT INTO {table} "
            "(org_id, source, event_id, type, time, data, content_hash, received_at) "
            "SELECT o, s, i, t, tm, d::jsonb, h, %b FROM unnest("
            "%b::bigint[], %b::text[], %b::text[], %b::text[], %b::timestamptz[], "
            "%b::text[], %b::text[]) AS u(o, s, i, t, tm, d, h) "
            "ON CONFLICT (org_id, source, event_id) DO NOTHING "
            "RETURNING org_id, source, event_id",
            [
                now,
                [r.org_id for r in rows],
                [r.source for r in rows],
                [r.event_id for r in rows],
                [r.type for r in rows],
                [r.time for r in rows],
                [r.data_json for r in rows],
                [r.content_hash for r in rows],
            ],
        )
        return {(int(o), s, e) for o, s, e in cursor.fetchall()}


def _mark_hours(hours: set[tuple[int, str, datetime]], now: datetime) -> None:
    """Upsert rollup marks. DO UPDATE (not DO NOTHING) so a mark being consumed is waited for."""
    if not hours:
        return
    table = RollupMark._meta.db_table
    ops = connection.ops
    marked = ops.adapt_datetimefield_value(now)
    params: list[Any] = []
    for org_id, event_type, hour in sorted(hours):
        params += [org_id, event_type, ops.adapt_datetimefield_value(hour), marked]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (org_id, event_type, hour, marked_at) "
            f"VALUES {', '.join(['(%s, %s, %s, %s)'] * len(hours))} "
            "ON CONFLICT (org_id, event_type, hour) DO UPDATE SET marked_at = excluded.marked_at",
            params,
        )
