"""The floors under the ingestion ratio (issue 18, SPEC §9): what PostgreSQL and the per-event
Python work cost when each is measured alone, against a raw ``COPY`` in the same run.

    .venv/bin/python bench/ingest_floor.py [--events 100000] [--writers 2] [--tiny]

1. **The baseline**: bench/ingest.py's raw ``COPY`` of the same rows into the minimal table,
   best of three, with the PostgreSQL backend's CPU per row.
2. **PostgreSQL alone.** Tessera's own insert statement (``metering.ingestion._INSERT_POSTGRESQL``:
   identity keys, partitioned events in their day partitions, hour marks) on a migrated scratch
   database, fed the rows the real validator built, from ``--writers`` connections at once,
   batches of 1,000 each sorted and in its own transaction as a request does, not prepared (as
   in production), into an emptied store, best of three; no HTTP and no validation while the
   clock runs: rows/s, its ratio to the raw ``COPY``, the backends' CPU per event, and the
   client's (the column arrays, their binary encoding, libpq's I/O, the transactions).
3. **Python per event**, each step alone over the same events (best of three; what Django
   loaded frozen out of the collector, as in a gunicorn worker): decoding with ``json``, with
   Tessera's strict parser and with ``msgspec``; the canonical JSON of the attributes and the
   data; the sha256 fingerprint; the time; and the whole fast-path check (``Ingestor._plain``,
   which includes the canonical JSON, fingerprint and time).

Then it adds them up: the CPU per event with no validation at all (PostgreSQL + ``msgspec``
decoding + canonical JSON + fingerprint + time + client) and with Tessera's checks (PostgreSQL
+ strict parser + ``_plain`` + client), and what that allows on the machine's cores at best,
as a share of the raw ``COPY``, beside the 35% target. These are floors: HTTP, Django, the
auth and org lookups, the response and the load generator come on top. ``bench/ingest.py``
measures the real thing through HTTP; this one says how far any change to the Python side
could take it.
"""

import argparse
import gc
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    add_common_arguments,
    cpu_seconds,
    parse,
    psycopg_url,
)
from bench.ingest import in_process, make_batches, raw_copy  # noqa: E402

RUNS = 3
TARGET = 0.35


def best_cpu(step: Callable[[], object]) -> float:
    """The least process CPU seconds of RUNS runs of ``step``."""
    best = float("inf")
    for _ in range(RUNS):
        started = time.process_time()
        step()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=2)
    add_common_arguments(parser, kind="ingest_floor")
    args = parse(parser, tiny={"events": 2000, "batch": 500})

    with in_process("ingest_floor", args.database) as (url, _):
        measure(url, args.events, args.batch, args.writers)


def ingestor_and_rows(events: list[dict[str, Any]]) -> tuple[Any, dict[str, int], list[Any]]:
    """(an Ingestor for the collector key of ``in_process``, the org ids of the events'
    subjects, the rows the fast path builds for ``events``)."""
    from metering.ingestion import Ingestor
    from tenancy.models import ApiKey

    ingestor = Ingestor(api_key=ApiKey.objects.get(kind=ApiKey.Kind.COLLECTOR))
    orgs = ingestor._orgs({e["subject"] for e in events})
    rows = [ingestor._plain(event, orgs, n) for n, event in enumerate(events)]
    if None in rows:
        raise SystemExit("an event of bench/ingest.py left the fast path; the floor would be wrong")
    return ingestor, orgs, rows


def insert_alone(url: str, rows: list[Any], batch: int, writers: int) -> tuple[float, float, float]:
    """(seconds, backend CPU seconds, client CPU seconds) to insert ``rows`` into an empty
    store with Tessera's statement from ``writers`` connections at once, each batch sorted and
    inserted in its own transaction as a request does. Not prepared, as in production (Django
    disables psycopg's prepared statements). The client's CPU is the column arrays, their
    binary encoding, libpq's I/O and the transactions, all threads together. Raises the first
    error any writer met."""
    from metering.ingestion import _FIELDS, _INSERT_POSTGRESQL, _arrays
    from metering.models import RollupMark, UsageEvent, UsageEventKey

    tables = ", ".join(m._meta.db_table for m in (UsageEvent, UsageEventKey, RollupMark))
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables}")
        conn.execute("CHECKPOINT")
    connections = [psycopg.connect(psycopg_url(url), autocommit=True) for _ in range(writers)]
    errors: list[BaseException] = []
    try:
        pids = [conn.info.backend_pid for conn in connections]
        now = datetime.now(UTC)
        batches = [rows[start : start + batch] for start in range(0, len(rows), batch)]

        def write(conn: psycopg.Connection, mine: list[list[Any]]) -> None:
            try:
                for part in mine:
                    with conn.transaction(), conn.cursor() as cursor:
                        ordered = sorted(part, key=lambda r: r.key)
                        cursor.execute(_INSERT_POSTGRESQL, [*_arrays(ordered, *_FIELDS), now, now])
                        if cursor.fetchall():
                            raise RuntimeError("a new event was answered as already stored")
            except BaseException as exc:  # a thread's error would otherwise only be printed
                errors.append(exc)

        threads = [
            threading.Thread(target=write, args=(conn, batches[n::writers]))
            for n, conn in enumerate(connections)
        ]
        backend_before, client_before = cpu_seconds(pids), time.process_time()
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        backend, client = cpu_seconds(pids) - backend_before, time.process_time() - client_before
        measured = (seconds, backend, client)
    finally:
        for conn in connections:
            conn.close()
    if errors:
        raise errors[0]
    return measured


def measure(url: str, total: int, batch: int, writers: int) -> None:
    batches = make_batches(total, batch, datetime.now(UTC))
    events = [e for b in batches for e in b]
    bodies = [json.dumps(b).encode() for b in batches]
    ingestor, orgs, rows = ingestor_and_rows(events)
    # As a gunicorn worker does after start-up (config/wsgi.py): what Django loaded stays out
    # of the collections the steps below trigger.
    gc.collect()
    gc.freeze()

    from core.timeparse import parse_instant
    from metering.jsonbody import parse_json
    from metering.validation import plain_json

    def canonical(event: dict[str, Any]) -> tuple[str | None, str | None]:
        attributes = {name: value for name, value in event.items() if name != "data"}
        return plain_json(attributes), plain_json(event["data"], 2)

    texts = [canonical(e) for e in events]
    python = {
        "decode, json": best_cpu(lambda: [json.loads(b) for b in bodies]),
        "decode, strict parser": best_cpu(lambda: [parse_json(b) for b in bodies]),
        "decode, msgspec": best_cpu(lambda: [msgspec.json.decode(b) for b in bodies]),
        "canonical JSON, attributes and data": best_cpu(lambda: [canonical(e) for e in events]),
        "sha256 fingerprint": best_cpu(
            lambda: [hashlib.sha256(f"{a}\n{d}".encode()).hexdigest() for a, d in texts]
        ),
        "time": best_cpu(lambda: [parse_instant(e["time"], allow_date=False) for e in events]),
        "fast-path check (_plain, all of it)": best_cpu(
            lambda: [ingestor._plain(e, orgs, n) for n, e in enumerate(events)]
        ),
    }
    per_event = {name: seconds / total * 1e6 for name, seconds in python.items()}

    # The rows of bench/ingest.py's baseline, as it builds them.
    rows_for_copy: list[tuple[Any, ...]] = [
        ("platform", e["source"], e["id"], e["time"], json.dumps(e["data"])) for e in events
    ]
    copy_s, copy_cpu = min(raw_copy(url, rows_for_copy) for _ in range(RUNS))
    insert_s, backend_s, client_s = min(
        insert_alone(url, rows, batch, writers) for _ in range(RUNS)
    )

    copy_rate, insert_rate = total / copy_s, total / insert_s
    postgres, client = backend_s / total * 1e6, client_s / total * 1e6
    bare = (
        postgres
        + per_event["decode, msgspec"]
        + per_event["canonical JSON, attributes and data"]
        + per_event["sha256 fingerprint"]
        + per_event["time"]
        + client
    )
    checked = (
        postgres
        + per_event["decode, strict parser"]
        + per_event["fast-path check (_plain, all of it)"]
        + client
    )
    cores = len(os.sched_getaffinity(0))
    print(f"events: {total} in batches of {batch}; {writers} writers; {cores} cores")
    print(
        f"baseline raw COPY (minimal table):    {copy_rate:10.0f} rows/s (best of {RUNS}); "
        f"PostgreSQL {copy_cpu / total * 1e6:.1f} µs per row"
    )
    print(
        f"insert statement alone:               {insert_rate:10.0f} rows/s = "
        f"{insert_rate / copy_rate:6.1%} of raw COPY (best of {RUNS}); per event: PostgreSQL "
        f"{postgres:.1f} µs, client {client:.1f} µs (arrays, encoding, I/O, transactions)"
    )
    for name, micros in per_event.items():
        print(f"python, {name + ':':38s}{micros:6.2f} µs per event (best of {RUNS})")
    for label, micros in (("no validation", bare), ("Tessera's checks", checked)):
        best = cores / (micros / 1e6)
        print(
            f"floor, {label + ':':18s} {micros:5.1f} µs per event -> at most {best:8.0f}/s on "
            f"{cores} cores = {best / copy_rate:6.1%} of raw COPY (target >= {TARGET:.0%}; "
            "before HTTP, Django and the load generator)"
        )
    budget = cores / (TARGET * copy_rate) * 1e6
    print(f"budget at {TARGET:.0%} of raw COPY: {budget:.1f} µs of CPU per event, for everything")


if __name__ == "__main__":
    main()
