import json
import os

import pytest

from metering.collectors.common import iso
from metering.collectors.spool import Spool
from metering.collectors.telemetry import Telemetry
from metering.collectors.tokens import Endpoint, LogTailer, Scraper, replay

from .conftest import T0


def record(request_id, prompt=10, completion=5, cached=0, org="acme"):
    return json.dumps(
        {
            "id": request_id,
            "org": org,
            "model": "llama-3.1-70b",
            "created": int(T0),
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
            "batch": False,
            "endpoint": "shared-eu",
        }
    )


def write(path, *lines, mode="a"):
    with open(path, mode) as handle:
        handle.write("".join(line + "\n" for line in lines))


@pytest.fixture
def spool(tmp_path):
    return Spool(tmp_path / "spool.sqlite3")


def spooled(spool):
    return [json.loads(item.body) for item in spool.batch(100_000)]


def tailer(tmp_path, spool):
    return LogTailer(
        path=str(tmp_path / "usage.jsonl"), source="gw", spool=spool, telemetry=Telemetry("t")
    )


def test_gateway_records_become_events_keyed_by_request_id(tmp_path, spool):
    write(tmp_path / "usage.jsonl", record("req-1", 100, 20, cached=64))
    with open(tmp_path / "usage.jsonl", "a") as handle:
        handle.write(record("req-2")[:20])  # a writer mid-line

    assert tailer(tmp_path, spool).poll() == 1

    [event] = spooled(spool)
    assert event["id"] == "req-1"
    assert event["subject"] == "acme"
    assert event["type"] == "llm.tokens"
    assert event["time"] == iso(T0)
    assert event["data"] == {
        "model": "llama-3.1-70b",
        "input_tokens": "100",
        "cached_tokens": "64",
        "uncached_input_tokens": "36",
        "output_tokens": "20",
        "batch": False,
        "endpoint": "shared-eu",
    }


def test_offsets_survive_restarts_rotation_and_truncation(tmp_path, spool):
    log = tmp_path / "usage.jsonl"
    write(log, record("a"), record("b"))
    assert tailer(tmp_path, spool).poll() == 2

    # a restart (a new tailer on the same spool) reads only what is new
    write(log, record("c"))
    assert tailer(tmp_path, spool).poll() == 1

    # rotation: lines written to the old file just before it moved are still read, then the new
    write(log, record("d"))
    os.rename(log, tmp_path / "usage.jsonl.1")
    write(log, record("e"), mode="w")
    assert tailer(tmp_path, spool).poll() == 2

    # copytruncate: the file shrinks under us; it is read again from the start
    write(log, "", mode="w")
    write(log, record("f"))
    assert tailer(tmp_path, spool).poll() == 1

    assert [e["id"] for e in spooled(spool)] == ["a", "b", "c", "d", "e", "f"]


def test_an_unusable_line_is_kept_aside_and_the_rest_is_read(tmp_path, spool):
    write(tmp_path / "usage.jsonl", "{not json", record("ok"), json.dumps({"id": "x"}))

    assert tailer(tmp_path, spool).poll() == 1

    assert [e["id"] for e in spooled(spool)] == ["ok"]
    kept = spool.rejected()
    assert len(kept) == 2
    assert kept[1]["reasons"] == ["org is missing"]


VLLM = """# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="llama-3.1-70b"}} {prompt}
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="llama-3.1-70b"}} {generation}
"""


def scraper(tmp_path, spool, **endpoint):
    target = Endpoint(
        name="dedicated-1", url=f"file://{tmp_path / 'metrics.prom'}", org="acme", **endpoint
    )
    return Scraper(endpoints=[target], spool=spool, telemetry=Telemetry("t"), window_seconds=60)


def expose(tmp_path, prompt, generation):
    (tmp_path / "metrics.prom").write_text(VLLM.format(prompt=prompt, generation=generation))


def totals(spool):
    events = spooled(spool)
    return (
        sum(int(e["data"]["input_tokens"]) for e in events),
        sum(int(e["data"]["output_tokens"]) for e in events),
    )


def test_counter_resets_and_failed_scrapes_neither_invent_nor_lose_tokens(tmp_path, spool):
    s = scraper(tmp_path, spool)
    expose(tmp_path, 1000, 200)
    s.scrape_all(T0 + 5)  # the server started at zero: 1000 / 200 so far
    expose(tmp_path, 1500, 260)
    s.scrape_all(T0 + 20)

    # a failed scrape changes nothing...
    (tmp_path / "metrics.prom").unlink()
    s.scrape_all(T0 + 35)
    # ...the next good one carries the tokens counted meanwhile
    expose(tmp_path, 1800, 300)
    s.scrape_all(T0 + 65)
    # the server restarts: its counters start again from zero
    expose(tmp_path, 40, 7)
    s.scrape_all(T0 + 80)
    # a restarted collector (new scraper, same spool) continues from the saved values
    expose(tmp_path, 90, 17)
    scraper(tmp_path, spool).scrape_all(T0 + 125)

    events = {e["data"]["window_start"]: e["data"] for e in spooled(spool)}
    assert sorted(events) == [iso(T0), iso(T0 + 60)]  # the window of T0+120 is still open
    assert (events[iso(T0)]["input_tokens"], events[iso(T0)]["output_tokens"]) == ("1500", "260")
    assert (events[iso(T0 + 60)]["input_tokens"], events[iso(T0 + 60)]["output_tokens"]) == (
        str(300 + 40),
        str(40 + 7),
    )
    assert spooled(spool)[0]["id"] == f"dedicated-1/llama-3.1-70b/{iso(T0)}"
    scraper(tmp_path, spool).flush(T0 + 180)
    assert totals(spool) == (1800 + 90, 300 + 17)


def test_metric_names_and_labels_are_configurable(tmp_path, spool):
    (tmp_path / "metrics.prom").write_text(
        "# TYPE sglang:prompt_tokens_total counter\n"
        'sglang:prompt_tokens_total{model="qwen"} 70\n'
        "# TYPE sglang:generation_tokens_total counter\n"
        'sglang:generation_tokens_total{model="qwen"} 30\n'
    )
    s = scraper(
        tmp_path,
        spool,
        model_label="model",
        input_metric="sglang:prompt_tokens_total",
        output_metric="sglang:generation_tokens_total",
    )
    s.scrape_all(T0)
    s.flush(T0 + 60)

    [event] = spooled(spool)
    assert (event["data"]["model"], event["data"]["input_tokens"]) == ("qwen", "70")


def test_replaying_recorded_scrapes_twice_adds_nothing_the_second_time(tmp_path, spool):
    recorded = tmp_path / "replay" / "dedicated-1"
    recorded.mkdir(parents=True)
    for minute, (prompt, generation) in enumerate([(0, 0), (100, 10), (250, 40), (30, 3)]):
        stamp = iso(T0 + 30 + 60 * minute).replace(":", "-")
        (recorded / f"{stamp}.prom").write_text(VLLM.format(prompt=prompt, generation=generation))
    s = scraper(tmp_path, spool)

    assert replay(s, tmp_path / "replay") == 4
    assert replay(s, tmp_path / "replay") == 0

    assert totals(spool) == (250 + 30, 40 + 3)
    assert len(spooled(spool)) == 3


def test_the_collectors_load_without_django():
    import subprocess
    import sys

    code = (
        "import sys, metering.collectors.gpu, metering.collectors.tokens, "
        "metering.collectors.simnvml; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'rest_framework', 'tenancy', 'billing', 'config')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
