"""Ingestion of CloudEvents 1.0 usage events (SPEC §3, §5).

Each event is validated on its own (``metering.validation`` has the rules and the refusal
codes); the valid ones are stored in one statement that deduplicates in the database
(``INSERT … ON CONFLICT DO NOTHING RETURNING``), and the hours they touch are marked for the
rollup in the same transaction. A 202 therefore means stored.

Identity (SPEC §3): ``(source, id)`` within the namespace of the credential. Platform
collector keys share the namespace ``platform``; an org's ingest key writes in ``org:<id>``
only. So a customer's key can never occupy, block or learn of a collector's event identity
or another org's, and a collector event repeated under another subject is one event. An
event whose identity is taken is a duplicate when its type, time and data equal the stored
event's (compared as values; the subject is not part of it), and is refused with
``id_conflict`` otherwise; the stored event never changes.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from core.timeparse import parse_instant
from tenancy.models import ApiKey, Org

from . import metrics
from .models import Meter, RollupMark, UsageEvent, UsageEventKey
from .paths import lookup, parse_path
from .validation import (
    MAX_DIMENSION_CHARS,
    MAX_ID_CHARS,
    MAX_SUBJECT_CHARS,
    MAX_TYPE_CHARS,
    MAX_UNIQUE_VALUE_CHARS,
    TOO_DEEP,
    Problem,
    encode,
    plain_json,
    quantity,
    show,
    stored_text,
    string_problem,
)

REQUIRED = ("specversion", "id", "source", "type", "subject", "time", "data")
PLATFORM_NAMESPACE = "platform"
_LIMITS = {
    "id": MAX_ID_CHARS,
    "source": MAX_ID_CHARS,
    "type": MAX_TYPE_CHARS,
    "subject": MAX_SUBJECT_CHARS,
}


def namespace_for(api_key: ApiKey) -> str:
    """The identity namespace of a key: shared by all collector keys, one per org."""
    if api_key.kind == ApiKey.Kind.COLLECTOR:
        return PLATFORM_NAMESPACE
    return f"org:{api_key.org_id}"


@dataclass
class Rejection:
    index: int
    id: str | None
    problems: list[Problem]

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "reasons": [p.message for p in self.problems],
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[Rejection] = field(default_factory=list)

    def reject(self, index: int, event_id: Any, problems: list[Problem]) -> None:
        self.rejected += 1
        self.errors.append(Rejection(index, _echo(event_id), problems))

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": [e.as_dict() for e in sorted(self.errors, key=lambda e: e.index)],
        }


def _echo(event_id: Any) -> str | None:
    """The id to echo in a rejection: lone surrogates escaped, so the answer is valid UTF-8."""
    if not isinstance(event_id, str):
        return None
    return event_id[:1000].encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class _Valid:
    index: int
    org_id: int
    namespace: str
    source: str
    event_id: str
    type: str
    time: datetime
    data_json: str
    content_hash: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.source, self.event_id)


@dataclass(frozen=True)
class _Rule:
    """What one meter reads from an event's data."""

    meter: Meter
    value: tuple[str, ...] | None
    value_field: str
    dimensions: tuple[tuple[str, tuple[str, ...], str], ...]  # (name, path, field)


def _rule(meter: Meter) -> _Rule:
    dimensions = tuple(
        (name, parse_path(path), f"data{path[1:]}") for name, path in sorted(meter.group_by.items())
    )
    value = parse_path(meter.value_path) if meter.value_path else None
    return _Rule(meter, value, f"data{meter.value_path[1:]}", dimensions)


class Ingestor:
    """Validates and stores one request's events for one API key."""

    def __init__(self, *, api_key: ApiKey, now: datetime | None = None) -> None:
        self.api_key = api_key
        self.namespace = namespace_for(api_key)
        self.now = now or timezone.now()
        self.oldest = self.now - timedelta(days=settings.TESSERA_LATE_WINDOW_DAYS)
        self.newest = self.now + timedelta(seconds=settings.TESSERA_FUTURE_SKEW_SECONDS)
        self.rules: dict[str, list[_Rule]] = {}
        for meter in Meter.objects.all():
            self.rules.setdefault(meter.event_type, []).append(_rule(meter))

    def ingest(self, events: list[Any]) -> IngestResult:
        result = IngestResult()
        orgs = self._orgs(e.get("subject") for e in events if isinstance(e, dict))
        valid: list[_Valid] = []
        # A repeat of an identity within the batch is classified after the insert, against the
        # stored event and by value, exactly like a retry in a later batch (SPEC §3): `1.0`
        # and `1.00` are one event whichever request carries the second.
        repeats: list[_Valid] = []
        seen: set[tuple[str, str, str]] = set()
        for index, event in enumerate(events):
            row = self._plain(event, orgs, index)
            if row is None:
                row, problems = self._validate(event, orgs, index)
            if row is None:
                result.reject(index, event.get("id") if isinstance(event, dict) else None, problems)
            elif row.key in seen:
                repeats.append(row)
            else:
                seen.add(row.key)
                valid.append(row)
        if valid:
            with transaction.atomic():
                # Stores the new events and marks the hours they touch for the rollup.
                stored_before = _insert(valid, self.now)
                self._classify_conflicts(valid, stored_before, repeats, result)
        metrics.record_ingest(result.accepted, result.duplicates, result.rejected)
        return result

    def _orgs(self, subjects: Iterable[Any]) -> dict[str, int]:
        unique = {s for s in subjects if isinstance(s, str)}  # a batch names few orgs
        slugs = {s for s in unique if len(s) <= MAX_SUBJECT_CHARS and not string_problem(s, "")}
        if self.api_key.kind == ApiKey.Kind.ORG:
            org = self.api_key.org
            return {org.slug: org.pk} if org and org.slug in slugs else {}
        return dict(Org.objects.filter(slug__in=slugs).values_list("slug", "pk"))

    def _plain(self, event: Any, orgs: dict[str, int], index: int) -> _Valid | None:
        """The common case, checked in one pass with the fewest steps: the row of an event that
        every rule of ``_validate`` accepts, exactly as ``_validate`` would build it; None when
        anything is unusual (a refusal to explain, or an allowed but rarer form such as a
        ``datacontenttype`` with parameters or text the C encoder leaves to the walk), and
        ``_validate`` decides. Issue 18: with the C encoder it cut the Python CPU per event by
        ~40%; the differential tests in tests/metering/test_ingest_fast_path.py hold the two
        together."""
        if type(event) is not dict or event.get("specversion") != "1.0":
            return None
        data = event.get("data")
        event_id = event.get("id")
        source = event.get("source")
        event_type = event.get("type")
        subject = event.get("subject")
        raw_time = event.get("time")
        if (
            type(data) is not dict
            or type(event_id) is not str
            or type(source) is not str
            or type(event_type) is not str
            or type(subject) is not str
            or type(raw_time) is not str
            or not 0 < len(event_id) <= MAX_ID_CHARS
            or not 0 < len(source) <= MAX_ID_CHARS
            or not 0 < len(event_type) <= MAX_TYPE_CHARS
            or not (event_id.strip() and source.strip() and event_type.strip())
        ):
            return None
        content_type = event.get("datacontenttype")
        # The subject is known, so it is a clean slug (``_orgs`` only looks those up).
        org_id = orgs.get(subject)
        rules = self.rules.get(event_type)
        if (content_type is not None and content_type != "application/json") or (
            org_id is None or not rules
        ):
            return None
        try:
            moment = parse_instant(raw_time, allow_date=False)
        except ValueError:
            return None
        if not self.oldest <= moment <= self.newest:
            return None
        attributes_text = plain_json({name: v for name, v in event.items() if name != "data"})
        data_text = plain_json(data, depth=2)
        if attributes_text is None or data_text is None or _check_data(data, rules, []):
            return None
        return self._row(index, org_id, event, moment, attributes_text, data_text)

    def _row(
        self,
        index: int,
        org_id: int,
        event: dict[str, Any],
        moment: datetime,
        attributes_text: str,
        data_text: str,
    ) -> _Valid:
        """The row of an accepted event, whichever validator accepted it; the fingerprint is
        the sha256 of its canonical attributes and data."""
        fingerprint = f"{attributes_text}\n{data_text}"
        return _Valid(
            index=index,
            org_id=org_id,
            namespace=self.namespace,
            source=event["source"],
            event_id=event["id"],
            type=event["type"],
            time=moment,
            data_json=data_text,
            content_hash=hashlib.sha256(fingerprint.encode()).hexdigest(),
        )

    def _validate(
        self, event: Any, orgs: dict[str, int], index: int
    ) -> tuple[_Valid | None, list[Problem]]:
        if event is TOO_DEEP:
            return None, [Problem("event", "too_deep", "the event nests too deep to be read")]
        if not isinstance(event, dict):
            return None, [Problem("event", "invalid_type", "event must be a JSON object")]
        scanned: list[Problem] = []
        attributes = {name: value for name, value in event.items() if name != "data"}
        attributes_text = encode(attributes, "", scanned)
        data_text = encode(event["data"], "data", scanned, depth=2) if "data" in event else ""
        dirty = {p.field for p in scanned}
        missing = [name for name in REQUIRED if name not in event]
        problems = [Problem(name, "required", f"{name} is required") for name in missing]
        problems += scanned
        spec = event.get("specversion")
        if "specversion" in event and spec != "1.0":
            problems.append(
                Problem(
                    "specversion",
                    "invalid_specversion",
                    f"specversion must be '1.0', not {show(spec)}",
                )
            )
        for name, limit in _LIMITS.items():
            value = event.get(name)
            if name not in event or name in dirty:
                continue
            if not isinstance(value, str):
                problems.append(Problem(name, "invalid_type", f"{name} must be a non-empty string"))
            elif not value.strip():
                problems.append(Problem(name, "empty", f"{name} must be a non-empty string"))
            elif len(value) > limit:
                problems.append(
                    Problem(name, "too_long", f"{name} is longer than {limit} characters")
                )
        dirty |= {p.field for p in problems}
        content_type = event.get("datacontenttype")
        if content_type is not None and (
            not isinstance(content_type, str)
            or content_type.split(";")[0].strip().lower() != "application/json"
        ):
            problems.append(
                Problem(
                    "datacontenttype",
                    "invalid_content_type",
                    "datacontenttype must be 'application/json' when given",
                )
            )
        time = self._time(event, problems) if "time" in event and "time" not in dirty else None
        data = event.get("data")
        if "data" in event and not isinstance(data, dict) and data is not TOO_DEEP:
            problems.append(Problem("data", "invalid_type", "data must be a JSON object"))
        event_type = event.get("type")
        if isinstance(event_type, str) and event_type and "type" not in dirty:
            rules = self.rules.get(event_type)
            if not rules:
                problems.append(
                    Problem(
                        "type",
                        "unknown_type",
                        f"type {show(event_type)} is not measured by any meter",
                    )
                )
            elif isinstance(data, dict):
                problems += _check_data(data, rules, problems)
        subject = event.get("subject")
        org_id = orgs.get(subject) if isinstance(subject, str) else None
        unknown = isinstance(subject, str) and subject.strip() and org_id is None
        if unknown and "subject" not in dirty:
            if self.api_key.kind == ApiKey.Kind.ORG:
                own = self.api_key.org.slug if self.api_key.org else "?"
                problems.append(
                    Problem(
                        "subject",
                        "forbidden_subject",
                        f"this key may only report usage for org {own!r}, not {show(subject)}",
                    )
                )
            else:
                problems.append(
                    Problem(
                        "subject", "unknown_subject", f"subject {show(subject)} is not a known org"
                    )
                )
        if problems or org_id is None or time is None:
            return None, problems
        return self._row(index, org_id, event, time, attributes_text, data_text), []

    def _time(self, event: dict[str, Any], problems: list[Problem]) -> datetime | None:
        raw = event["time"]
        if not isinstance(raw, str):
            problems.append(Problem("time", "invalid_type", "time must be an RFC 3339 string"))
            return None
        try:
            moment = parse_instant(raw, allow_date=False)
        except ValueError as exc:
            problems.append(Problem("time", "invalid_time", f"time {exc}"))
            return None
        if moment < self.oldest:
            problems.append(
                Problem(
                    "time",
                    "too_old",
                    f"time {raw} is older than the late window of "
                    f"{settings.TESSERA_LATE_WINDOW_DAYS} days",
                )
            )
            return None
        if moment > self.newest:
            problems.append(
                Problem("time", "in_future", f"time {raw} is more than 5 minutes in the future")
            )
            return None
        return moment

    @staticmethod
    def _classify_conflicts(
        valid: list[_Valid],
        stored_before: set[tuple[str, str, str]],
        repeats: list[_Valid],
        result: IngestResult,
    ) -> None:
        """Count what was inserted; each other row (its identity stored before, or a repeat
        within the batch) is a duplicate when its content equals the stored event's, and is
        refused with ``id_conflict`` otherwise."""
        conflicts = [row for row in valid if row.key in stored_before] if stored_before else []
        result.accepted += len(valid) - len(conflicts)
        conflicts += repeats
        if not conflicts:
            return
        same = _same_as_stored(conflicts)
        for position, row in enumerate(conflicts):
            if position in same:
                result.duplicates += 1
            else:
                result.reject(
                    row.index,
                    row.event_id,
                    [
                        Problem(
                            "id",
                            "id_conflict",
                            f"id {show(row.event_id)} from source {show(row.source)} was "
                            "already accepted with other content; the stored event is unchanged",
                        )
                    ],
                )


def _check_data(data: dict[str, Any], rules: list[_Rule], earlier: list[Problem]) -> list[Problem]:
    """The meters' values and group-by dimensions in ``data`` (SPEC §3)."""
    found_problems: list[Problem] = []
    reported = {(p.field, p.code) for p in earlier}

    def add(problem: Problem | None) -> None:
        if problem and (problem.field, problem.code) not in reported:
            reported.add((problem.field, problem.code))
            found_problems.append(problem)

    for rule in rules:
        meter = rule.meter
        if rule.value is not None:
            where = rule.value_field
            found, value = lookup(data, rule.value)
            if not found or value is None:
                add(Problem(where, "required", f"{where} is required by meter {meter.key!r}"))
            elif meter.needs_numeric_value:
                add(quantity(value, where, allow_negative=meter.allow_negative)[1])
            else:
                add(_text_problem(value, where, MAX_UNIQUE_VALUE_CHARS, meter, "invalid_type"))
        for name, path, where in rule.dimensions:
            found, value = lookup(data, path)
            if not found or value is None:
                add(
                    Problem(
                        where,
                        "missing_dimension",
                        f"{where} is required: it is the dimension {name!r} of meter {meter.key!r}",
                    )
                )
            else:
                add(_text_problem(value, where, MAX_DIMENSION_CHARS, meter, "invalid_dimension"))
    return found_problems


def _text_problem(value: Any, where: str, limit: int, meter: Meter, code: str) -> Problem | None:
    text = stored_text(value)
    if text is None:
        return Problem(where, code, f"{where} must be a string, number or boolean")
    if len(text) > limit:
        return Problem(
            where, "too_long", f"{where} is longer than {limit} characters (meter {meter.key!r})"
        )
    return None


# Each row is looked up on its own, through the key table: its org and time lead to the
# stored event by the whole (org, type, time) index key, in the one partition that holds it.
# The LATERAL subqueries with LIMIT 1 pin that shape whatever the statistics say (and in a
# generic plan, should statements ever be prepared). As a plain join, with a freshly filled
# table not yet analyzed, the planner hashed the whole key table and scanned every index
# entry of the org for each row (`type` left as a join filter): the cost of a duplicate grew
# with the org's stored events (issue 18: 86 µs of PostgreSQL per duplicate at 50,000
# events, against 23 per new event; bench/ingest.py).
_SAME_AS_STORED_POSTGRESQL = (
    "SELECT k.pos - 1 "
    "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[], "
    "%b::text[]) WITH ORDINALITY AS k(n, s, i, t, tm, d, pos) "
    "CROSS JOIN LATERAL ("
    f"SELECT key.org_id, key.time FROM {UsageEventKey._meta.db_table} key "
    "WHERE key.namespace = k.n AND key.source = k.s AND key.event_id = k.i "
    "AND key.time = k.tm LIMIT 1) key "
    "CROSS JOIN LATERAL ("
    f"SELECT FROM {UsageEvent._meta.db_table} e "
    "WHERE e.org_id = key.org_id AND e.type = k.t AND e.time = key.time "
    "AND e.namespace = k.n AND e.source = k.s AND e.event_id = k.i "
    "AND e.data = k.d::jsonb LIMIT 1) same"
)


def _same_as_stored(rows: list[_Valid]) -> set[int]:
    """Positions in ``rows`` whose stored event has the same type, time and data (as values:
    jsonb equality on PostgreSQL). Several rows may share an identity."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                _SAME_AS_STORED_POSTGRESQL,
                _arrays(rows, "namespace", "source", "event_id", "type", "time", "data_json"),
            )
            return {position for (position,) in cursor.fetchall()}
    # The stored data as its text (through JSONField it would come back with binary floats),
    # compared by value like jsonb equality: 3600 and 3600.0 are one number.
    stored = (
        UsageEvent.objects.filter(
            namespace__in={r.namespace for r in rows},
            source__in={r.source for r in rows},
            event_id__in={r.event_id for r in rows},
        )
        .annotate(text=Cast("data", TextField()))
        .values_list("namespace", "source", "event_id", "type", "time", "text")
    )
    contents = {(n, s, i): (t, tm, _by_value(d)) for n, s, i, t, tm, d in stored}
    return {
        position
        for position, row in enumerate(rows)
        if contents.get(row.key) == (row.type, row.time, _by_value(row.data_json))
    }


def _by_value(text: str) -> Any:
    """JSON text as a value that compares like jsonb: numbers as exact decimals (``3600`` ==
    ``3600.0``), kept apart from booleans (``true`` is not ``1``), keys unordered."""

    def value(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: value(item) for key, item in node.items()}
        if isinstance(node, list):
            return [value(item) for item in node]
        if isinstance(node, Decimal):
            return ("number", node)
        return node

    return value(json.loads(text, parse_float=Decimal, parse_int=Decimal))


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


_COLUMNS = "(org_id, namespace, source, event_id, type, time, data, content_hash, received_at)"
# The _Valid fields behind the columns (without received_at), in the same order.
_FIELDS = ("org_id", "namespace", "source", "event_id", "type", "time", "data_json", "content_hash")


def _arrays(rows: list[_Valid], *fields: str) -> list[list[Any]]:
    """One array per field, for ``unnest``: columns travel as binary arrays."""
    return [[getattr(row, name) for row in rows] for name in fields]


def _insert(rows: list[_Valid], now: datetime) -> set[tuple[str, str, str]]:
    """Insert; return the identities that were already stored (those rows were not inserted).
    The usual answer is the empty set: nothing to build or compare for a batch of new events."""
    # One key order for every writer, so two overlapping batches cannot deadlock.
    rows = sorted(rows, key=lambda r: r.key)
    if connection.vendor == "postgresql":
        return _insert_postgresql(rows, now)
    table = UsageEvent._meta.db_table
    ops = connection.ops
    received = ops.adapt_datetimefield_value(now)
    inserted: set[tuple[str, str, str]] = set()
    chunk = 500
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for r in part:
                params += [
                    r.org_id,
                    r.namespace,
                    r.source,
                    r.event_id,
                    r.type,
                    ops.adapt_datetimefield_value(r.time),
                    r.data_json,
                    r.content_hash,
                    received,
                ]
            cursor.execute(
                f"INSERT INTO {table} {_COLUMNS} "
                f"VALUES {', '.join(['(%s, %s, %s, %s, %s, %s, %s, %s, %s)'] * len(part))} "
                "ON CONFLICT (namespace, source, event_id) DO NOTHING "
                "RETURNING namespace, source, event_id",
                params,
            )
            inserted.update((n, s, e) for n, s, e in cursor.fetchall())
    _mark_hours({(r.org_id, r.type, _hour(r.time)) for r in rows if r.key in inserted}, now)
    return {r.key for r in rows} - inserted


# Identity is the key table's primary key (the event table is partitioned by time and cannot
# hold it): insert the keys, then only the events whose key was new, then mark their hours
# for the rollup set-wise, in (org, type, hour) order like every writer of marks. DO UPDATE,
# not DO NOTHING, so that a mark being consumed by a rollup is waited for. The hour is
# truncated in UTC whatever the session's time zone. The answer is the identities that were
# already stored: none for a batch of new events.
_INSERT_POSTGRESQL = (
    "WITH u AS (SELECT * FROM unnest("
    "%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[], "
    "%b::text[], %b::text[]) AS u(o, n, s, i, t, tm, d, h)), "
    f"k AS (INSERT INTO {UsageEventKey._meta.db_table} "
    "(namespace, source, event_id, time, org_id) SELECT n, s, i, tm, o FROM u "
    "ON CONFLICT (namespace, source, event_id) DO NOTHING "
    "RETURNING namespace, source, event_id), "
    f"e AS (INSERT INTO {UsageEvent._meta.db_table} {_COLUMNS} "
    "SELECT o, n, s, i, t, tm, d::jsonb, h, %b FROM u "
    "JOIN k ON k.namespace = u.n AND k.source = u.s AND k.event_id = u.i "
    "RETURNING org_id, type, time), "
    f"m AS (INSERT INTO {RollupMark._meta.db_table} (org_id, event_type, hour, marked_at) "
    "SELECT DISTINCT org_id, type, date_trunc('hour', time, 'UTC'), %b::timestamptz FROM e "
    "ORDER BY 1, 2, 3 "
    "ON CONFLICT (org_id, event_type, hour) DO UPDATE SET marked_at = excluded.marked_at) "
    "SELECT u.n, u.s, u.i FROM u "
    "WHERE NOT EXISTS (SELECT FROM k WHERE k.namespace = u.n AND k.source = u.s "
    "AND k.event_id = u.i)"
)


def _insert_postgresql(rows: list[_Valid], now: datetime) -> set[tuple[str, str, str]]:
    """One statement per batch: columns travel as binary arrays, bound server-side. It is not
    a prepared statement: Django opens connections with psycopg's ``prepare_threshold=None``,
    under which ``prepare=True`` does nothing, and planning costs ~0.3 ms per batch of 1,000
    (~0.3 µs per event, against ~20 µs to execute), too little to turn on prepared statements
    for every query (and to rule out transaction-mode poolers) for it."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_INSERT_POSTGRESQL, [*_arrays(rows, *_FIELDS), now, now])
        return {(n, s, e) for n, s, e in cursor.fetchall()}


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
