"""Ingestion throughput: HTTP (batches of 1,000, gunicorn, PostgreSQL) against two baselines
measured in the same run on the same rows (issue 18, SPEC §9):

1. raw ``COPY`` into a minimal table (identity columns, time, JSONB data, one unique index on
   identity): the physical limit of this machine;
2. ``COPY`` into an unindexed staging table, then ``INSERT … ON CONFLICT DO NOTHING`` into the
   minimal table, per batch: the idempotent-insert path.

    .venv/bin/python bench/ingest.py [--events 50000] [--clients 2] [--workers 2] [--tiny]

Works in a scratch database of its own (``--database NAME`` to keep one), serves the API with
gunicorn on production settings (DEBUG off, plain HTTP on loopback), posts the events, posts
them again (all duplicates: every collector's retry path). Prints events/s for HTTP, rows/s
for both baselines (the best of three runs each), HTTP's ratio to each, and the CPU per new
event and per duplicate of the gunicorn workers, the PostgreSQL backends and the client; the
target is HTTP >= 35% of raw COPY.
"""

import argparse
import json
import os
import queue
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    add_common_arguments,
    child_pids,
    cpu_seconds,
    parse,
    production_settings,
    psycopg_url,
    scratch_database,
)
from tests.reliability.servers import Server, manage  # noqa: E402

ORGS = 20
BASELINE_RUNS = 3
# Events are spread over the 47 hours before the last complete hour, wrapping around for big
# runs: every one is inside the late window and none is in the future, whatever --events is.
SPAN_SECONDS = 47 * 3600


def make_batches(total: int, batch: int, now: datetime) -> list[list[dict[str, Any]]]:
    base = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=48)
    events = [
        {
            "specversion": "1.0",
            "id": f"gpu:node-{i % 64}:{i}",
            "source": f"tessera-gpu-collector/node-{i % 64}",
            "type": "gpu.usage",
            "subject": f"org-{i % ORGS}",
            "time": (base + timedelta(seconds=(i * 3) % SPAN_SECONDS))
            .isoformat()
            .replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": {
                "gpu_seconds": "60",
                "gpu_model": "H100",
                "region": "eu-north",
                "gpu_uuid": f"GPU-{i % 512:08d}",
                "node": f"node-{i % 64}",
                "utilization_avg": "87.5",
            },
        }
        for i in range(total)
    ]
    return [events[i : i + batch] for i in range(0, total, batch)]


def catalog() -> dict[str, Any]:
    """What every ingestion benchmark loads: a GPU meter and ORGS orgs."""
    return {
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


def setup(url: str, var: Path) -> str:
    """Migrate, create the event partitions, load ``catalog()``; return a collector key."""
    manage(url, "migrate", "-v0", var_dir=var)
    path = var / "catalog.json"
    path.write_text(json.dumps(catalog()))
    manage(url, "load_catalog", str(path), var_dir=var)
    # The day partitions of the late window and the days ahead, as the hourly beat job keeps
    # them in production: events land in their day, not in the default partition.
    manage(url, "event_partitions", var_dir=var)
    return manage(url, "create_api_key", "--collector", "bench", "--quiet", var_dir=var).strip()


@contextmanager
def in_process(kind: str, database: str | None) -> Iterator[tuple[str, str]]:
    """``setup`` in this process: a scratch database (``database`` to keep one), Django set
    up on production settings with no rollup on ingest and no broker, migrated, with the day
    partitions and ``catalog()``; yields (its URL, a collector key). Django's
    connections are closed before the scratch database is dropped."""
    with scratch_database(kind, database) as url, tempfile.TemporaryDirectory() as tmp:
        production_settings(DATABASE_URL=url, TESSERA_ROLLUP_ON_INGEST="false", TESSERA_VAR_DIR=tmp)
        os.environ.pop("CELERY_BROKER_URL", None)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        try:
            call_command("migrate", verbosity=0)
            call_command("event_partitions", stdout=StringIO())
            path = Path(tmp) / "catalog.json"
            path.write_text(json.dumps(catalog()))
            call_command("load_catalog", str(path), verbosity=0, stdout=StringIO())
            out = StringIO()
            call_command("create_api_key", collector="bench", quiet=True, stdout=out)
            yield url, out.getvalue().strip()
        finally:
            connections.close_all()


def post_all(url: str, key: str, bodies: list[bytes], clients: int) -> tuple[int, float]:
    """Post every body (``clients`` at a time, each client one kept-alive connection); return
    (events accepted, seconds). A client is made once per thread, before the clock starts:
    making one per request (an SSL context and a CA bundle each time) cost the client ~50 µs
    of CPU per event, on the cores the server measured here needs."""
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    pool = [httpx.Client(timeout=300, headers=headers) for _ in range(clients)]
    free: queue.SimpleQueue[httpx.Client] = queue.SimpleQueue()
    for client in pool:
        free.put(client)

    def send(body: bytes) -> int:
        client = free.get()
        try:
            response = client.post(url, content=body)
            response.raise_for_status()
            return int(response.json()["accepted"])
        finally:
            free.put(client)

    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as executor:
            accepted = sum(executor.map(send, bodies))
        return accepted, time.perf_counter() - started
    finally:
        for client in pool:
            client.close()


# The physical limit: identity columns, time, JSONB data and one unique index on identity.
MINIMAL = (
    "CREATE TABLE {name} (namespace text NOT NULL, source text NOT NULL, event_id text NOT NULL, "
    "time timestamptz NOT NULL, data jsonb NOT NULL, UNIQUE (namespace, source, event_id))"
)
COLUMNS = "(namespace, source, event_id, time, data)"


def _backends(url: str) -> list[int]:
    """The PostgreSQL backends connected to the scratch database (the workers' persistent
    connections), but not the one asking."""
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        return [
            pid for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]  # fmt: skip


def raw_copy(url: str, rows: list[tuple[Any, ...]]) -> tuple[float, float]:
    """(seconds, the backend's CPU seconds) to COPY ``rows`` into a fresh minimal table
    (baseline 1)."""
    with psycopg.connect(psycopg_url(url)) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw")
        conn.execute(MINIMAL.format(name="bench_raw"))
        conn.commit()
        backend = [conn.info.backend_pid]
        cpu_before, started = cpu_seconds(backend), time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY bench_raw {COLUMNS} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started, cpu_seconds(backend) - cpu_before


def staged_upsert(url: str, rows: list[tuple[str, ...]], batch: int) -> float:
    """Seconds to load ``rows`` the idempotent way (baseline 2): per batch, COPY into an
    unindexed staging table, then INSERT … ON CONFLICT DO NOTHING into the minimal table, and
    commit, as one ingest request does."""
    with psycopg.connect(psycopg_url(url)) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_upsert")
        conn.execute(MINIMAL.format(name="bench_upsert"))
        conn.execute(
            "CREATE UNLOGGED TABLE IF NOT EXISTS bench_staging "
            "(namespace text, source text, event_id text, time timestamptz, data jsonb)"
        )
        conn.commit()
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            with conn.cursor() as cur:
                with cur.copy(f"COPY bench_staging {COLUMNS} FROM STDIN") as copy:
                    for row in rows[start : start + batch]:
                        copy.write_row(row)
                cur.execute(
                    f"INSERT INTO bench_upsert {COLUMNS} SELECT * FROM bench_staging "
                    "ON CONFLICT (namespace, source, event_id) DO NOTHING"
                )
                cur.execute("TRUNCATE bench_staging")
            conn.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    add_common_arguments(parser, kind="ingest")
    args = parse(parser, tiny={"events": 2000, "batch": 500})

    with scratch_database("ingest", args.database) as url, tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        key = setup(url, var)
        batches = make_batches(args.events, args.batch, datetime.now(UTC))
        bodies = [json.dumps(b).encode() for b in batches]
        server = Server(url, workers=args.workers, var_dir=var)
        try:
            events_url = f"{server.url}/api/v1/events"
            # Warm every worker (sync workers take one request each at a time).
            warm = make_batches(10 * args.workers, 10, datetime.now(UTC))
            for event in (e for batch in warm for e in batch):
                event["id"] = "warm:" + event["id"]
            post_all(events_url, key, [json.dumps(b).encode() for b in warm], args.workers)
            # Where the CPU of the HTTP run goes: the gunicorn workers, the PostgreSQL backends
            # serving them (persistent connections, so they live through the run) and this
            # process's client threads.
            workers = child_pids(server.proc.pid)

            def posting() -> tuple[int, float, tuple[float, float, float]]:
                """(accepted, seconds, CPU seconds of the workers, backends and client)."""
                backends = _backends(url)
                before = (
                    cpu_seconds(workers),
                    {pid: cpu_seconds([pid]) for pid in backends},
                    time.process_time(),
                )
                accepted, seconds = post_all(events_url, key, bodies, args.clients)
                backends = _backends(url)  # and those a worker opened during the run
                return (
                    accepted,
                    seconds,
                    (
                        cpu_seconds(workers) - before[0],
                        sum(cpu_seconds([pid]) - before[1].get(pid, 0.0) for pid in backends),
                        time.process_time() - before[2],
                    ),
                )

            accepted, http_s, cpu = posting()
            again, dup_s, dup_cpu = posting()  # the same bodies again: all duplicates
        finally:
            server.close()
        assert accepted == args.events, f"accepted {accepted} of {args.events}"
        assert again == 0, f"{again} duplicates accepted"
        rows: list[tuple[str, ...]] = [
            ("platform", e["source"], e["id"], e["time"], json.dumps(e["data"]))
            for batch in batches
            for e in batch
        ]
        # Best of BASELINE_RUNS: a baseline is a limit, and a busy or throttled moment only
        # lowers it (a single short COPY varied by ±20% between runs on a shared 2-core VM).
        copy_rate = max(args.events / raw_copy(url, rows)[0] for _ in range(BASELINE_RUNS))
        upsert_rate = max(
            args.events / staged_upsert(url, rows, args.batch) for _ in range(BASELINE_RUNS)
        )

    http_rate = args.events / http_s
    dup_rate = args.events / dup_s
    print(
        f"events: {args.events} in batches of {args.batch}, {args.clients} clients, "
        f"{args.workers} gunicorn workers"
    )
    print(f"HTTP ingest (new events):            {http_rate:10.0f} events/s")
    print(f"HTTP ingest (duplicates):            {dup_rate:10.0f} events/s")
    print(
        f"baseline raw COPY (minimal table):   {copy_rate:10.0f} rows/s (best of {BASELINE_RUNS})"
    )
    print(
        f"baseline COPY→staging→ON CONFLICT:   {upsert_rate:10.0f} rows/s (best of {BASELINE_RUNS})"
    )
    print(f"ratio HTTP / raw COPY:               {http_rate / copy_rate:10.1%}  (target >= 35%)")
    print(f"ratio HTTP / staged upsert:          {http_rate / upsert_rate:10.1%}")
    for label, measured in (("new event", cpu), ("duplicate", dup_cpu)):
        per_event = [seconds / args.events * 1e6 for seconds in measured]
        print(
            f"CPU per {label} (HTTP run): gunicorn workers {per_event[0]:.0f} µs, PostgreSQL "
            f"backends {per_event[1]:.0f} µs, client {per_event[2]:.0f} µs; "
            f"{len(os.sched_getaffinity(0))} cores"
        )


if __name__ == "__main__":
    main()
