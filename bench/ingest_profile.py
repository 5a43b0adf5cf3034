"""Where one ingest request's time goes: the events API called in-process (Django's test
client, PostgreSQL, the same rows as bench/ingest.py), under pyinstrument.

    .venv/bin/python bench/ingest_profile.py [--events 20000] [--html FILE]

Creates (and drops at the start) the database ``tessera_bench_profile``. Prints the profile
as text (the slowest call paths) and the split of time between decoding, validation, the
insert and the rest.
"""

import argparse
import json
import os
import sys
from io import StringIO
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PG = "postgresql://postgres@127.0.0.1:5432"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--db", default="tessera_bench_profile")
    parser.add_argument("--html", default=None)
    args = parser.parse_args()
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {args.db}")
    os.environ.update(
        DATABASE_URL=f"{PG}/{args.db}",
        DEBUG="false",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-" + "x" * 50,
        TESSERA_SSL_REDIRECT="false",
        TESSERA_ROLLUP_ON_INGEST="false",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from ingest import make_batches  # bench/ingest.py: the same rows
    from pyinstrument import Profiler

    call_command("migrate", verbosity=0)
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
    call_command("load_catalog", str(catalog), verbosity=0)
    out = StringIO()
    call_command("create_api_key", collector="bench", quiet=True, stdout=out)
    key = out.getvalue().strip()
    client = Client(
        HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1", SERVER_NAME="127.0.0.1"
    )
    bodies = [json.dumps(b).encode() for b in make_batches(args.events, args.batch)]
    warm = json.dumps(make_batches(10, 10)[0]).replace("gpu:", "warm:")
    client.post("/api/v1/events", warm, content_type="application/cloudevents-batch+json")
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for body in bodies:
        response = client.post(
            "/api/v1/events", body, content_type="application/cloudevents-batch+json"
        )
        assert response.status_code == 202, response.content[:300]
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if args.html:
        Path(args.html).write_text(profiler.output_html())


if __name__ == "__main__":
    main()
