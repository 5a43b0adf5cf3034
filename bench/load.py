"""Ingestion under concurrent load, with duplicates mixed in: figures and the exactly-once check.

    .venv/bin/python bench/load.py [--seconds 60] [--clients 4] [--workers 4] [--batch 500]
                                   [--dup-share 0.2]

Creates (and drops at the start) the database ``tessera_load`` on 127.0.0.1:5432, serves the
API with gunicorn, runs the client processes of ``tests/reliability/loadgen.py`` for the given
time, then checks that stored events = distinct events sent (each accepted exactly once) and
that the rollups hold exactly their GPU-seconds, and prints the figures. The suite runs the
same load, bounded (``TESSERA_LOAD_SECONDS``, default 10), in tests/reliability/test_load.py.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability import loadgen  # noqa: E402
from tests.reliability.servers import Server, manage  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"
DB = "tessera_load"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--dup-share", type=float, default=0.2)
    args = parser.parse_args()

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    url = f"{PG}/{DB}".replace("postgresql://", "postgres://")
    var = Path(tempfile.mkdtemp(prefix="tessera-load-"))
    manage(url, "migrate", "-v0", var_dir=var)
    catalog = var / "catalog.json"
    catalog.write_text(json.dumps({
        "meters": [{"key": "gpu_time", "event_type": "gpu.usage", "value": "$.gpu_seconds",
                    "aggregation": "sum",
                    "group_by": {"gpu_model": "$.gpu_model", "region": "$.region"}}],
        "orgs": [{"slug": s, "name": s, "country": "FR", "currency": "USD"}
                 for s in loadgen.ORGS],
    }))  # fmt: skip
    manage(url, "load_catalog", str(catalog), var_dir=var)
    key = manage(url, "create_api_key", "--collector", "load", "--quiet", var_dir=var).strip()
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)

    server = Server(url, workers=args.workers, var_dir=var)
    try:
        result = loadgen.run(url=server.url, key=key, base=base, clients=args.clients,
                             seconds=args.seconds, batch=args.batch,
                             dup_share=args.dup_share)  # fmt: skip
    finally:
        server.close()
    print(result.figures())

    with psycopg.connect(f"{PG}/{DB}") as conn:
        [(stored,)] = conn.execute("SELECT count(*) FROM metering_usageevent").fetchall()
    started = time.perf_counter()
    manage(url, "rollup", var_dir=var)
    rollup_seconds = time.perf_counter() - started
    with psycopg.connect(f"{PG}/{DB}") as conn:
        rolled = {
            slug: int(total)
            for slug, total in conn.execute(
                "SELECT o.slug, sum(r.value) FROM metering_hourlyrollup r "
                "JOIN tenancy_org o ON o.id = r.org_id GROUP BY o.slug"
            )
        }
    checks = {
        "stored = distinct sent": stored == len(result.distinct),
        "accepted once each": result.total("accepted") == len(result.distinct),
        "accepted + duplicates = sent": result.total("accepted") + result.total("duplicates")
        == result.sent,
        "no rejections": result.total("rejected") == 0,
        "rollups = distinct GPU-seconds": rolled == result.expected_per_org(),
    }
    print(f"stored events: {stored}; rollup of them: {rollup_seconds:.1f} s")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    shutil.rmtree(var, ignore_errors=True)
    if not all(checks.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
