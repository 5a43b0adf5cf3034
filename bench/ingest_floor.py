"""The floors under the ingestion ratio (issue 18, SPEC §9): what PostgreSQL and the per-event
Python work cost when each is measured alone, against a raw ``COPY`` in the same run.

    .venv/bin/python bench/ingest_floor.py [--events 100000] [--writers 2] [--tiny]

1. **PostgreSQL alone.** Tessera's own insert statement (``metering.ingestion._INSERT_POSTGRESQL``:
   identity keys, partitioned events, hour marks) on a migrated scratch database, fed the
   rows the real validator built, from ``--writers`` connections at once, batches of 1,000,
   no HTTP and no validation while the clock runs: rows/s, its ratio to the raw ``COPY``, the
   backends' CPU per event, and the client's (the column arrays and their binary encoding).
2. **Python per event**, each step alone over the same events (best of three): decoding with
   ``json``, with Tessera's strict parser and with ``msgspec``; the canonical JSON of the
   attributes and the data; the sha256 fingerprint; the time; and the whole fast-path check
   (``Ingestor._plain``, which includes the canonical JSON, fingerprint and time).

Then it adds them up: the CPU per event with no validation at all (PostgreSQL + ``msgspec``
decoding + canonical JSON + fingerprint + time + arrays) and with Tessera's checks (PostgreSQL
+ strict parser + ``_plain`` + arrays), and what that allows on the machine's cores at best,
as a share of the raw ``COPY``, beside the 35% target. ``bench/ingest.py`` measures the real
thing through HTTP; this one says how far any change to the Python side could take it.
"""

import argparse
import gc
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from io import StringIO
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
    production_settings,
    psycopg_url,
    scratch_database,
)
from bench.ingest import ORGS, make_batches, raw_copy  # noqa: E402
from core.gcpause import cyclic_gc_paused  # noqa: E402

RUNS = 3
TARGET = 0.35


def best_cpu(step: Callable[[], object]) -> float:
    """The least process CPU seconds of RUNS runs of ``step``, each with the cyclic collector
    paused as the events API pauses it (core/gcpause.py)."""
    best = float("inf")
    for _ in range(RUNS):
        with cyclic_gc_paused():
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

    with (
        scratch_database("ingest_floor", args.database) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        production_settings(DATABASE_URL=url, TESSERA_ROLLUP_ON_INGEST="false", TESSERA_VAR_DIR=tmp)
        os.environ.pop("CELERY_BROKER_URL", None)
        measure(url, args.events, args.batch, args.writers, Path(tmp))


def setup_and_rows(events: list[dict[str, Any]], var: Path) -> tuple[Any, list[Any]]:
    """Migrate, create the event partitions, load the meter and orgs of bench/ingest.py; return
    (an Ingestor for a collector key, the rows its fast path builds for ``events``)."""
    import django

    django.setup()
    from django.core.management import call_command

    from metering.ingestion import Ingestor
    from tenancy.models import ApiKey

    call_command("migrate", verbosity=0)
    call_command("event_partitions", stdout=StringIO())  # as bench/ingest.py: rows in their day
    catalog = var / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "meters": [
                    {
                        "key": "gpu_time",
                        "event_type": "gpu.usage",
                        "value": "$.gpu_seconds",
                        "aggregation": "sum",
                        "group_by": {"gpu_model": "$.gpu_model", "region": "$.region"},
                    }
                ],
                "orgs": [
                    {"slug": f"org-{i}", "name": f"Org {i}", "country": "FR", "currency": "EUR"}
                    for i in range(ORGS)
                ],
            }
        )
    )
    call_command("load_catalog", str(catalog), verbosity=0, stdout=StringIO())
    call_command("create_api_key", collector="bench", quiet=True, stdout=StringIO())
    ingestor = Ingestor(api_key=ApiKey.objects.get(kind=ApiKey.Kind.COLLECTOR))
    orgs = ingestor._orgs({e["subject"] for e in events})
    rows = [ingestor._plain(event, orgs, n) for n, event in enumerate(events)]
    if None in rows:
        raise SystemExit("an event of bench/ingest.py left the fast path; the floor would be wrong")
    return ingestor, rows


def insert_alone(url: str, rows: list[Any], batch: int, writers: int) -> tuple[float, float, float]:
    """(seconds, backend CPU seconds, client CPU seconds) to insert ``rows`` with Tessera's
    statement from ``writers`` connections at once, each batch in its own transaction."""
    from metering.ingestion import _FIELDS, _INSERT_POSTGRESQL, _arrays

    connections = [psycopg.connect(psycopg_url(url), autocommit=True) for _ in range(writers)]
    try:
        pids = [conn.info.backend_pid for conn in connections]
        now = datetime.now(UTC)
        batches = [
            sorted(rows[start : start + batch], key=lambda r: r.key)
            for start in range(0, len(rows), batch)
        ]

        def write(conn: psycopg.Connection, mine: list[list[Any]]) -> None:
            for part in mine:
                with conn.transaction(), conn.cursor() as cursor:
                    params = [*_arrays(part, *_FIELDS), now, now]
                    cursor.execute(_INSERT_POSTGRESQL, params, prepare=True)
                    if cursor.fetchall():
                        raise SystemExit("a new event was answered as already stored")

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
        return (
            seconds,
            cpu_seconds(pids) - backend_before,
            time.process_time() - client_before,
        )
    finally:
        for conn in connections:
            conn.close()


def measure(url: str, total: int, batch: int, writers: int, var: Path) -> None:
    batches = make_batches(total, batch, datetime.now(UTC))
    events = [e for b in batches for e in b]
    bodies = [json.dumps(b).encode() for b in batches]
    ingestor, rows = setup_and_rows(events, var)
    # As a gunicorn worker does after start-up (config/wsgi.py): what Django loaded stays out
    # of the collections the steps below trigger.
    gc.collect()
    gc.freeze()

    from core.timeparse import parse_instant
    from metering.jsonbody import parse_json
    from metering.validation import plain_json

    orgs = ingestor._orgs({e["subject"] for e in events})
    canonical = [
        (plain_json({k: v for k, v in e.items() if k != "data"}), plain_json(e["data"], 2))
        for e in events
    ]
    python = {
        "decode, json": best_cpu(lambda: [json.loads(b) for b in bodies]),
        "decode, strict parser": best_cpu(lambda: [parse_json(b) for b in bodies]),
        "decode, msgspec": best_cpu(lambda: [msgspec.json.decode(b) for b in bodies]),
        "canonical JSON, attributes and data": best_cpu(
            lambda: [
                (plain_json({k: v for k, v in e.items() if k != "data"}), plain_json(e["data"], 2))
                for e in events
            ]
        ),
        "sha256 fingerprint": best_cpu(
            lambda: [hashlib.sha256(f"{a}\n{d}".encode()).hexdigest() for a, d in canonical]
        ),
        "time": best_cpu(lambda: [parse_instant(e["time"], allow_date=False) for e in events]),
        "fast-path check (_plain, all of it)": best_cpu(
            lambda: [ingestor._plain(e, orgs, n) for n, e in enumerate(events)]
        ),
    }
    per_event = {name: seconds / total * 1e6 for name, seconds in python.items()}

    rows_for_copy: list[tuple[Any, ...]] = [
        (r.namespace, r.source, r.event_id, r.time, r.data_json) for r in rows
    ]
    copy_s = min(raw_copy(url, rows_for_copy) for _ in range(RUNS))
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw")
    insert_s, backend_s, client_s = insert_alone(url, rows, batch, writers)

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
    cores = os.cpu_count() or 1
    print(f"events: {total} in batches of {batch}; {writers} writers; {cores} cores")
    print(f"baseline raw COPY (minimal table):    {copy_rate:10.0f} rows/s (best of {RUNS})")
    print(
        f"insert statement alone:               {insert_rate:10.0f} rows/s = "
        f"{insert_rate / copy_rate:6.1%} of raw COPY; per event: PostgreSQL {postgres:.1f} µs, "
        f"arrays and their encoding {client:.1f} µs"
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
