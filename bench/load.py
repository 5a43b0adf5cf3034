"""Ingestion under concurrent load, with duplicates mixed in: figures and the exactly-once check.

    .venv/bin/python bench/load.py [--seconds 60] [--clients 4] [--workers 4] [--batch 500]
                                   [--dup-share 0.2] [--database NAME] [--tiny]

Works in a scratch database of its own (``--database NAME`` to keep one), serves the API with
gunicorn, runs the client processes of ``tests/reliability/loadgen.py`` for the given time,
then checks that stored events = distinct events sent (each accepted exactly once) and that
the rollups hold exactly their GPU-seconds, and prints the figures. The baseline, measured in
the same run on the same server first (then emptied away), is one client alone sending new
events only: the figures under load are multiples of its throughput and latency. The suite
runs the same load, bounded (``TESSERA_LOAD_SECONDS``, default 10), in
tests/reliability/test_load.py.
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

from bench.common import (  # noqa: E402
    add_common_arguments,
    parse,
    psycopg_url,
    scratch_database,
    versus,
)
from tests.reliability import loadgen  # noqa: E402
from tests.reliability.servers import Server, manage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--dup-share", type=float, default=0.2)
    add_common_arguments(parser, kind="load")
    args = parse(parser, tiny={"seconds": 3.0, "clients": 2, "workers": 2, "batch": 200})
    with scratch_database("load", args.database) as url:
        var = Path(tempfile.mkdtemp(prefix="tessera-load-"))
        try:
            ok = run(args, url, var)
        finally:
            shutil.rmtree(var, ignore_errors=True)
    if not ok:
        sys.exit(1)


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(psycopg_url(url)) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def run(args: argparse.Namespace, url: str, var: Path) -> bool:
    manage(url, "migrate", "-v0", var_dir=var)
    manage(url, "event_partitions", var_dir=var)  # days as production keeps them (bench/ingest.py)
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
        alone = loadgen.run(url=server.url, key=key, base=base, clients=1,
                            seconds=max(1.0, args.seconds / 4), batch=args.batch,
                            dup_share=0.0)  # fmt: skip
        query(url, "TRUNCATE metering_usageevent, metering_usage_event_key, metering_rollupmark")
        result = loadgen.run(url=server.url, key=key, base=base, clients=args.clients,
                             seconds=args.seconds, batch=args.batch,
                             dup_share=args.dup_share)  # fmt: skip
    finally:
        server.close()
    print(f"baseline, one client alone: {alone.figures()}")
    print(f"under load: {result.figures()}")
    print(f"  throughput {result.events_per_second:,.0f} events/s = "
          f"{versus(result.events_per_second, alone.events_per_second)}")  # fmt: skip
    for name, quantile in (("p50", 0.5), ("p95", 0.95)):
        ms = result.latency(quantile) * 1000
        print(f"  request latency {name} {ms:,.0f} ms = "
              f"{versus(ms, alone.latency(quantile) * 1000)}")  # fmt: skip

    [(stored,)] = query(url, "SELECT count(*) FROM metering_usageevent")
    started = time.perf_counter()
    manage(url, "rollup", var_dir=var)
    rollup_seconds = time.perf_counter() - started
    rolled = {
        slug: int(total)
        for slug, total in query(
            url,
            "SELECT o.slug, sum(r.value) FROM metering_hourlyrollup r "
            "JOIN tenancy_org o ON o.id = r.org_id GROUP BY o.slug",
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
    return all(checks.values())


if __name__ == "__main__":
    main()
