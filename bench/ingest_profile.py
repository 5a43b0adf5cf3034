"""Where one ingest request's time goes: the events API called in-process (Django's test
client, PostgreSQL, the rows of bench/ingest.py), under pyinstrument.

    .venv/bin/python bench/ingest_profile.py [--events 20000] [--batch 1000] [--html FILE] [--tiny]

Works in a scratch database of its own (``--database NAME`` to keep one). Prints the profile as
text: the call paths, with the seconds spent in each (decoding, validation, the insert, the
rest). The baseline of the split is the whole request, in the same run.
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    add_common_arguments,
    parse,
)
from bench.ingest import in_process, make_batches  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--html", default=None, help="Also write pyinstrument's HTML here.")
    add_common_arguments(parser, kind="ingest_profile")
    args = parse(parser, tiny={"events": 1000, "batch": 500})

    with in_process("ingest_profile", args.database) as (_, key):
        profile(args.events, args.batch, key, args.html)


def profile(events: int, batch: int, key: str, html: str | None) -> None:
    from django.test import Client
    from pyinstrument import Profiler

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    now = datetime.now(UTC)
    bodies = [json.dumps(b).encode() for b in make_batches(events, batch, now)]
    warm = make_batches(10, 10, now)[0]
    for event in warm:
        event["id"] = "warm:" + event["id"]
    kind = "application/cloudevents-batch+json"
    client.post("/api/v1/events", json.dumps(warm), content_type=kind)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for body in bodies:
        response = client.post("/api/v1/events", body, content_type=kind)
        assert response.status_code == 202, response.content[:300]
    profiler.stop()
    print(f"events: {events} in batches of {batch}, in-process (no HTTP server)")
    print(profiler.output_text(unicode=False, color=False))
    if html:
        Path(html).write_text(profiler.output_html())


if __name__ == "__main__":
    main()
