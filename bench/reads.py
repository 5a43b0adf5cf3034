"""Usage and summary reads for one org with 10 million events stored (SPEC §9: p95 < 50 ms).

    .venv/bin/python bench/reads.py [--events 10000000] [--requests 200] [--database NAME]
                                    [--tiny]

Works in a scratch database of its own (``--database NAME`` to keep one); writes the events
with one server-side INSERT … SELECT over generate_series (GPU and token events over the last
30 days, one org), rolls them up with the real rollup, rates the org's period, then serves the
API with gunicorn and times sequential requests over HTTP. Prints p50/p95 for
``GET /api/v1/usage`` (daily, grouped by GPU model), the same hourly over a week, and
``GET /api/v1/orgs/{org}/summary``, each against ``/healthz`` measured in the same run (the
floor of one HTTP round trip through Django), and the rollup's time against the INSERT's.
"""

import argparse
import json
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


def catalog(start: datetime) -> dict:
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
        "orgs": [{"slug": "big", "name": "Big AI", "country": "FR", "currency": "USD"}],
        "contracts": [{"key": "big", "org": "big", "issuer": "bench", "rate_card": "list",
                       "start": (start - timedelta(days=62)).date().isoformat(),
                       "reservations": [{"product": "h100", "quantity": 64,
                                         "unit_price": "2.10",
                                         "start": (start - timedelta(days=62)).date().isoformat(),
                                         "end": (start + timedelta(days=400)).date().isoformat()}],
                       "credits": [{"key": "welcome", "amount": "5000.00"}]}],
    }  # fmt: skip


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
    parser.add_argument("--requests", type=int, default=200)
    add_common_arguments(parser, kind="reads")
    args = parse(parser, tiny={"events": 20_000, "requests": 30})
    with scratch_database("reads", args.database) as url, tempfile.TemporaryDirectory() as var:
        run(args, url, Path(var))


def run(args: argparse.Namespace, url: str, var: Path) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=30)
    manage(url, "migrate", "-v0", var_dir=var)
    path = var / "catalog.json"
    path.write_text(json.dumps(catalog(start)))
    manage(url, "load_catalog", str(path), var_dir=var)
    key = manage(url, "create_api_key", "big", "--scope", "read", "--quiet", var_dir=var).strip()

    seconds = int((now - start).total_seconds())
    began = time.perf_counter()
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT id FROM tenancy_org WHERE slug = 'big'").fetchone()
        assert row is not None  # the catalog above made org "big"
        org_id = row[0]
        # 80% GPU windows (H100/H200), 20% token records, spread evenly over 30 days.
        conn.execute(
            """
            INSERT INTO metering_usageevent
                (org_id, namespace, source, event_id, type, time, data, content_hash,
                 received_at)
            SELECT %(org)s, 'platform', 'bench/' || (i %% 64), 'e' || i,
                   CASE WHEN i %% 5 = 0 THEN 'llm.tokens' ELSE 'gpu.usage' END,
                   %(start)s::timestamptz + make_interval(secs => (i::bigint * %(span)s) / %(n)s),
                   CASE WHEN i %% 5 = 0
                        THEN jsonb_build_object('model', 'llama-3.1-70b',
                                                'input_tokens', 1000 + i %% 997)
                        ELSE jsonb_build_object('gpu_seconds', '60',
                                                'gpu_model', CASE WHEN i %% 3 = 0 THEN 'H200'
                                                                  ELSE 'H100' END,
                                                'region', 'eu-north', 'node', 'n' || (i %% 64))
                   END,
                   md5(i::text) || md5(i::text), now()
            FROM generate_series(1, %(n)s) AS i
            """,
            {"org": org_id, "start": start, "span": seconds, "n": args.events},
        )
        conn.execute(
            """
            INSERT INTO metering_rollupmark (org_id, event_type, hour, marked_at)
            SELECT DISTINCT org_id, type, date_trunc('hour', time), now()
            FROM metering_usageevent
            """
        )
        conn.execute("ANALYZE")
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

    print(f"events stored: {args.events:,} for one org over 30 days")
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
