"""Usage and summary reads for one org with 10 million events stored (SPEC §9: p95 < 50 ms),
alone or in a store of 100 million events across daily partitions.

    .venv/bin/python bench/reads.py [--events 10000000] [--store-events N] [--other-orgs 999]
                                    [--days 90] [--requests 200] [--database NAME] [--tiny]

Works in a scratch database of its own (``--database NAME`` to keep one). First it creates the
daily event partitions over the days the events span (what the ``event_partitions`` beat job
keeps ahead), then writes the events with server-side INSERT … SELECT over generate_series,
one statement per day: ``--events`` GPU and token events over the last 30 days for one org,
and with ``--store-events N`` (N > ``--events``) the other N − ``--events`` spread over
``--other-orgs`` orgs and the last ``--days`` days (within the retention of late window + 60
days), so the store holds N events. It prints the disk the event store takes (every partition,
heap and index, and the identity key table) per million events. Then it rolls the one org's
events up with the real rollup (the other orgs' hours are not marked: their rollups do not
change the one org's reads), rates its period, serves the API with gunicorn and times
sequential requests over HTTP. Prints p50/p95 for ``GET /api/v1/usage`` (daily, grouped by GPU
model), the same hourly over a week, and ``GET /api/v1/orgs/{org}/summary``, each against
``/healthz`` measured in the same run (the floor of one HTTP round trip through Django), and
the rollup's time against the INSERT's.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
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
from tests.reliability.servers import Server, manage  # noqa: E402


def catalog(start: datetime, others: int) -> dict:
    return {
        "issuers": [{"key": "bench", "legal_name": "Bench SAS", "country": "FR",
                     "invoice_prefix": "BEN"}],
        "meters": [
            {"key": "gpu_time", "event_type": "gpu.usage", "value": "$.gpu_seconds",
             "aggregation": "sum", "group_by": {"gpu_model": "$.gpu_model", "region": "$.region"}},
            {"key": "llm_input_tokens", "event_type": "llm.tokens", "value": "$.input_tokens",
             "aggregation": "sum", "group_by": {"model": "$.model"}},
        ],
        "products": [
            {"key": "h100", "name": "H100 GPU-hour", "meter": "gpu_time",
             "filter": {"gpu_model": "H100", "region": "eu-north"}, "unit": "GPU-hour",
             "unit_size": 3600},
            {"key": "h200", "name": "H200 GPU-hour", "meter": "gpu_time",
             "filter": {"gpu_model": "H200", "region": "eu-north"}, "unit": "GPU-hour",
             "unit_size": 3600},
            {"key": "llama", "name": "Llama input, 1M tokens", "meter": "llm_input_tokens",
             "filter": {"model": "llama-3.1-70b"}, "unit": "1M tokens", "unit_size": 1000000},
        ],
        "rate_cards": [{"key": "list", "currency": "USD", "effective_from": "2026-01-01",
                        "prices": [
            {"product": "h100", "model": "per_unit", "unit_price": "2.50"},
            {"product": "h200", "model": "per_unit", "unit_price": "3.20"},
            {"product": "llama", "model": "graduated", "tiers": [
                {"up_to": 1000, "unit_price": "0.90"}, {"up_to": None, "unit_price": "0.70"}]},
        ]}],
        "orgs": [{"slug": "big", "name": "Big AI", "country": "FR", "currency": "USD"}]
        + [{"slug": f"other-{n:05d}", "name": f"Other {n}", "country": "DE", "currency": "EUR"}
           for n in range(others)],
        "contracts": [{"key": "big", "org": "big", "issuer": "bench", "rate_card": "list",
                       "start": (start - timedelta(days=62)).date().isoformat(),
                       "reservations": [{"product": "h100", "quantity": 64,
                                         "unit_price": "2.10",
                                         "start": (start - timedelta(days=62)).date().isoformat(),
                                         "end": (start + timedelta(days=400)).date().isoformat()}],
                       "credits": [{"key": "welcome", "amount": "5000.00"}]}],
    }  # fmt: skip


def _write(
    conn: psycopg.Connection,
    *,
    orgs: list[int],
    prefix: str,
    events: int,
    days: int,
    end: datetime,
) -> None:
    """``events`` events spread evenly over the ``days`` days before ``end`` and over
    ``orgs``, one INSERT … SELECT per day (so each statement fills one partition): 80% GPU
    windows (H100/H200), 20% token records."""
    per_day, extra = divmod(events, days)
    for day in range(days):
        n = per_day + (1 if day < extra else 0)
        if not n:
            continue
        conn.execute(
            """
            INSERT INTO metering_usageevent
                (org_id, namespace, source, event_id, type, time, data, content_hash,
                 received_at)
            SELECT (%(orgs)s::bigint[])[1 + i %% %(k)s], 'platform', 'bench/' || (i %% 64),
                   %(prefix)s || i, v.types[1 + i %% 960],
                   %(start)s::timestamptz + (i - %(first)s) * %(step)s * interval '1 microsecond',
                   v.docs[1 + i %% 960], lpad(to_hex(i), 64, '0'), now()
            FROM generate_series(%(first)s::bigint, %(first)s::bigint + %(n)s - 1) AS i,
                 -- 960 distinct payloads, built once per statement (not per row)
                 (SELECT array_agg(CASE WHEN j %% 5 = 0 THEN 'llm.tokens' ELSE 'gpu.usage' END
                                   ORDER BY j) AS types,
                         array_agg(CASE WHEN j %% 5 = 0
                              THEN jsonb_build_object('model', 'llama-3.1-70b',
                                                      'input_tokens', 1000 + j)
                              ELSE jsonb_build_object('gpu_seconds', '60',
                                                      'gpu_model', CASE WHEN j %% 3 = 0
                                                                        THEN 'H200'
                                                                        ELSE 'H100' END,
                                                      'region', 'eu-north',
                                                      'node', 'n' || (j %% 64))
                              END ORDER BY j) AS docs
                  FROM generate_series(0, 959) AS j) AS v
            """,
            {"orgs": orgs, "k": len(orgs), "prefix": prefix, "n": n, "step": 86_400_000_000 // n,
             "first": day * (per_day + 1), "start": end - timedelta(days=days - day)},
        )  # fmt: skip


def timed(client: httpx.Client, url: str, n: int, headers: dict[str, str]) -> list[float]:
    client.get(url, headers=headers).raise_for_status()  # warm
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument(
        "--store-events",
        type=int,
        default=0,
        help="events in the whole store (default: --events, the one org's alone)",
    )
    parser.add_argument("--other-orgs", type=int, default=999)
    parser.add_argument("--days", type=int, default=90, help="days the other orgs' events span")
    parser.add_argument("--requests", type=int, default=200)
    add_common_arguments(parser, kind="reads")
    args = parse(parser, tiny={"events": 20_000, "requests": 30, "store_events": 40_000,
                               "other_orgs": 3, "days": 40})  # fmt: skip
    if args.store_events and args.store_events < args.events:
        parser.error("--store-events must be at least --events")
    if args.store_events > args.events and (args.other_orgs < 1 or args.days < 1):
        parser.error("--other-orgs and --days must be at least 1")
    with scratch_database("reads", args.database) as url, tempfile.TemporaryDirectory() as var:
        run(args, url, Path(var))


def run(args: argparse.Namespace, url: str, var: Path) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=30)
    manage(url, "migrate", "-v0", var_dir=var)
    path = var / "catalog.json"
    others = max(args.store_events - args.events, 0)
    path.write_text(json.dumps(catalog(start, args.other_orgs if others else 0)))
    manage(url, "load_catalog", str(path), var_dir=var)
    key = manage(url, "create_api_key", "big", "--scope", "read", "--quiet", var_dir=var).strip()

    spread = args.days if others else 0
    first = (now - timedelta(days=max(30, spread))).date()
    # The daily partitions over every day written (the beat job keeps them ahead; retention
    # keeps late window + 60 days): partitions_ensure from `first` through tomorrow.
    window = int(os.environ.get("TESSERA_LATE_WINDOW_DAYS", "35"))
    # partitions_ensure starts a late window before `anchor` and ends `ahead` days after it
    anchor = min(now.date(), first + timedelta(days=window))
    ahead = (now.date() - anchor).days + 2
    manage(
        url, "shell", "-c",
        "from datetime import datetime, UTC; from metering.partitions import partitions_ensure; "
        f"partitions_ensure(now=datetime.fromisoformat('{anchor}').replace(tzinfo=UTC), "
        f"ahead_days={ahead})",
        var_dir=var,
    )  # fmt: skip

    began = time.perf_counter()
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT id FROM tenancy_org WHERE slug = 'big'").fetchone()
        assert row is not None  # the catalog above made org "big"
        org_id = row[0]
        other_ids = [
            pk for (pk,) in conn.execute(
                "SELECT id FROM tenancy_org WHERE slug LIKE 'other-%%' ORDER BY id"
            )
        ]  # fmt: skip
        _write(conn, orgs=[org_id], prefix="e", events=args.events, days=30, end=now)
        if others:
            _write(conn, orgs=other_ids, prefix="o", events=others, days=spread, end=now)
        # The one org's identity keys, as ingestion writes them (SPEC §3): the key table's
        # share of the disk per event is measured on them.
        conn.execute(
            """
            INSERT INTO metering_usage_event_key (namespace, source, event_id, time, org_id)
            SELECT namespace, source, event_id, time, org_id
            FROM metering_usageevent WHERE org_id = %s
            """,
            [org_id],
        )
        conn.execute(
            """
            INSERT INTO metering_rollupmark (org_id, event_type, hour, marked_at)
            SELECT DISTINCT org_id, type, date_trunc('hour', time), now()
            FROM metering_usageevent WHERE org_id = %s
            """,
            [org_id],
        )
        conn.execute("ANALYZE")
        sizes = conn.execute(
            """
            SELECT (SELECT count(*) FROM metering_usageevent),
                   (SELECT count(*) FROM metering_usage_event_key),
                   count(*) FILTER (WHERE isleaf),
                   sum(pg_total_relation_size(relid)),
                   pg_total_relation_size('metering_usage_event_key')
            FROM pg_partition_tree('metering_usageevent')
            """
        ).fetchone()
        assert sizes is not None
        stored, keys, partitions, disk, key_disk = (float(v) for v in sizes)
        stray = conn.execute("SELECT count(*) FROM metering_usageevent_default").fetchone()
    inserted = time.perf_counter() - began
    began = time.perf_counter()
    manage(url, "rollup", var_dir=var)
    rolled = time.perf_counter() - began
    manage(url, "rate", "--org", "big", var_dir=var)

    server = Server(url, workers=1, var_dir=var, TESSERA_READ_RATE="100000/min")
    base = server.url
    headers = {"Authorization": f"Bearer {key}"}
    try:
        day = start.date().isoformat()
        end = (now + timedelta(days=1)).date().isoformat()
        week = (start + timedelta(days=7)).date().isoformat()
        with httpx.Client(timeout=60) as client:
            floor = timed(client, f"{base}/healthz", args.requests, {})
            usage = timed(
                client,
                f"{base}/api/v1/usage?meter=gpu_time&start={day}&end={end}&window=day"
                "&group_by=gpu_model",
                args.requests,
                headers,
            )
            hourly = timed(
                client,
                f"{base}/api/v1/usage?meter=gpu_time&start={day}&end={week}&window=hour",
                args.requests,
                headers,
            )
            summary = timed(client, f"{base}/api/v1/orgs/big/summary", args.requests, headers)
    finally:
        server.close()

    print(f"events stored: {args.events:,} for one org over 30 days", end="")
    print(f"; {stored:,.0f} in the store over {max(30, spread)} days" if others else "")
    per_event = disk / stored
    per_key = key_disk / keys
    print(
        f"event store on disk: {disk / 2**30:.1f} GiB in {partitions:.0f} daily partitions "
        f"(heap, TOAST, index) = {per_event * 1e6 / 2**20:,.0f} MiB per million events; "
        f"identity keys {per_key * 1e6 / 2**20:,.0f} MiB per million (measured on the one org's "
        f"{keys:,.0f}); with both, {(per_event + per_key) * 1e6 / 2**20:,.0f} MiB per million; "
        f"{stray[0] if stray else 0:,} rows in the default partition"
    )
    print(f"baseline, INSERT … SELECT of the events:  {inserted:6.1f} s")
    print(f"rollup of them (manage.py rollup):       {rolled:6.1f} s = {versus(rolled, inserted)}")
    print(
        f"baseline GET /healthz:              p50 {statistics.median(floor):6.1f} ms  "
        f"p95 {p95(floor):6.1f} ms"
    )
    for name, values in (
        ("usage, 30 days by day and model:", usage),
        ("usage, 7 days by hour:           ", hourly),
        ("org summary:                     ", summary),
    ):
        print(
            f"{name}    p50 {statistics.median(values):6.1f} ms  p95 {p95(values):6.1f} ms  "
            f"= {p95(values) / p95(floor):4.1f}× the baseline (target p95 < 50 ms)"
        )


if __name__ == "__main__":
    main()
