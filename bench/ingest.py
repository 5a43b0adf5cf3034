"""Ingestion throughput: HTTP (batches of 1,000, gunicorn, PostgreSQL) against two baselines
measured in the same run on the same rows (issue 18, SPEC §9):

1. raw ``COPY`` into a minimal table (identity columns, time, JSONB data, one unique index on
   identity): the physical limit of this machine;
2. ``COPY`` into an unindexed staging table, then ``INSERT … ON CONFLICT DO NOTHING`` into the
   minimal table, per batch: the idempotent-insert path.

    .venv/bin/python bench/ingest.py [--events 50000] [--clients 2] [--workers 2]

Creates (and drops at the start) the database ``tessera_bench``. Prints events/s for HTTP,
rows/s for both baselines, and HTTP's ratio to each; the target is HTTP >= 35% of raw COPY.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432"
DB = "tessera_bench"


def sh(*args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        args, cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def make_batches(total: int, batch: int) -> list[list[dict]]:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    events = [
        {
            "specversion": "1.0",
            "id": f"gpu:node-{i % 64}:{i}",
            "source": f"tessera-gpu-collector/node-{i % 64}",
            "type": "gpu.usage",
            "subject": f"org-{i % 20}",
            "time": (base + timedelta(seconds=i * 3)).isoformat().replace("+00:00", "Z"),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument(
        "--db", default="tessera_bench", help="Scratch database (dropped and created)."
    )
    args = parser.parse_args()
    global DB
    DB = args.db

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{DB}",
        "DEBUG": "false",
        # DEBUG=false refuses the built-in key; this scratch server only needs one.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-" + "x" * 50,
        "TESSERA_SSL_REDIRECT": "false",  # plain HTTP on 127.0.0.1
        "TESSERA_ROLLUP_ON_INGEST": "false",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CELERY_BROKER_URL", None)
    py = sys.executable
    sh(py, "manage.py", "migrate", "-v0", env=env)
    catalog = ROOT / "var" / "bench-catalog.json"
    catalog.parent.mkdir(exist_ok=True)
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
                    for i in range(20)
                ],
            }
        )
    )
    sh(py, "manage.py", "load_catalog", str(catalog), env=env)
    key = sh(py, "manage.py", "create_api_key", "--collector", "bench", "--quiet", env=env).strip()

    batches = make_batches(args.events, args.batch)
    bodies = [json.dumps(b).encode() for b in batches]
    server = subprocess.Popen(
        [
            py,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-w",
            str(args.workers),
            "-b",
            f"127.0.0.1:{args.port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{args.port}/api/v1/events"
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        warm = json.dumps(make_batches(10, 10)[0]).replace("gpu:", "warm:").encode()
        httpx.post(url, content=warm, headers=headers, timeout=60)

        def send(body: bytes) -> int:
            with httpx.Client(timeout=120) as client:
                response = client.post(url, content=body, headers=headers)
                response.raise_for_status()
                return int(response.json()["accepted"])

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            accepted = sum(pool.map(send, bodies))
        http_seconds = time.perf_counter() - started
        # The same batches again: all duplicates, the retry path of every collector.
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            again = sum(pool.map(send, bodies))
        dup_seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert accepted == args.events, f"accepted {accepted} of {args.events}"
    assert again == 0

    rows: list[tuple[str, ...]] = [
        (
            "platform",
            e["source"],
            e["id"],
            e["time"],
            json.dumps(e["data"]),
        )
        for batch in batches
        for e in batch
    ]
    copy_rate = args.events / raw_copy(rows)
    upsert_rate = args.events / staged_upsert(rows, args.batch)
    http_rate = args.events / http_seconds
    dup_rate = args.events / dup_seconds
    print(
        f"events: {args.events} in batches of {args.batch}, {args.clients} clients, "
        f"{args.workers} gunicorn workers"
    )
    print(f"HTTP ingest (new events):            {http_rate:10.0f} events/s")
    print(f"HTTP ingest (duplicates):            {dup_rate:10.0f} events/s")
    print(f"baseline raw COPY (minimal table):   {copy_rate:10.0f} rows/s")
    print(f"baseline COPY→staging→ON CONFLICT:   {upsert_rate:10.0f} rows/s")
    print(f"ratio HTTP / raw COPY:               {http_rate / copy_rate:10.1%}  (target >= 35%)")
    print(f"ratio HTTP / staged upsert:          {http_rate / upsert_rate:10.1%}")


# The physical limit: identity columns, time, JSONB data and one unique index on identity.
MINIMAL = (
    "CREATE TABLE {name} (namespace text NOT NULL, source text NOT NULL, event_id text NOT NULL, "
    "time timestamptz NOT NULL, data jsonb NOT NULL, UNIQUE (namespace, source, event_id))"
)
COLUMNS = "(namespace, source, event_id, time, data)"


def raw_copy(rows: list[tuple[str, ...]]) -> float:
    """Seconds to COPY ``rows`` into a fresh minimal table (baseline 1)."""
    with psycopg.connect(f"{PG}/{DB}") as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw")
        conn.execute(MINIMAL.format(name="bench_raw"))
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY bench_raw {COLUMNS} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def staged_upsert(rows: list[tuple[str, ...]], batch: int) -> float:
    """Seconds to load ``rows`` the idempotent way (baseline 2): per batch, COPY into an
    unindexed staging table, then INSERT … ON CONFLICT DO NOTHING into the minimal table, and
    commit, as one ingest request does."""
    with psycopg.connect(f"{PG}/{DB}") as conn:
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


if __name__ == "__main__":
    main()
