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


ENGINES = """# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="llama-3.1-70b"}} {p0}
vllm:prompt_tokens_total{{engine="1",model_name="llama-3.1-70b"}} {p1}
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="llama-3.1-70b"}} 0
vllm:generation_tokens_total{{engine="1",model_name="llama-3.1-70b"}} 0
"""


@pytest.mark.parametrize(
    ("scrapes", "expected"),
    [
        # engine 0 / engine 1 prompt counters; engine 1 restarts (its counter drops)
        ([(1000, 1000), (1100, 50), (1200, 150)], 350),  # was 1,350 (resets per model)
        ([(1000, 500), (2000, 100)], 1100),  # was 600
    ],
)
def test_counter_deltas_and_resets_are_per_series(tmp_path, spool, scrapes, expected):
    # given a dedicated server with two engines, first scraped when it had already counted
    s = scraper(tmp_path, spool, count_from_zero=False)
    for i, (p0, p1) in enumerate(scrapes):
        (tmp_path / "metrics.prom").write_text(ENGINES.format(p0=p0, p1=p1))
        s.scrape_all(T0 + 10 * i)
    s.flush(T0 + 60)

    assert totals(spool) == (expected, 0)
    assert s.telemetry.counter_resets._value.get() == 1


def test_a_counter_state_saved_per_model_by_an_older_collector_is_carried_on(tmp_path, spool):
    # given the spool of the previous version: one value per model (engines summed)
    spool.set_state(
        "tokens:scrape:dedicated-1",
        {"series": {"llama-3.1-70b": {"input": 2000, "output": 0}}, "windows": {}},
    )
    s = scraper(tmp_path, spool)
    (tmp_path / "metrics.prom").write_text(ENGINES.format(p0=1100, p1=1000))
    s.scrape_all(T0)
    (tmp_path / "metrics.prom").write_text(ENGINES.format(p0=1200, p1=30))
    s.scrape_all(T0 + 10)
    s.flush(T0 + 60)

    assert totals(spool) == (100 + 100 + 30, 0)  # nothing counted twice after the upgrade


def usage_line(request_id, usage, **extra):
    return json.dumps(
        {
            "id": request_id,
            "org": "acme",
            "model": "llama-3.1-70b",
            "created": int(T0),
            "usage": usage,
            **extra,
        }
    )


def test_both_usage_shapes_carry_input_cached_uncached_and_output(tmp_path, spool):
    write(
        tmp_path / "usage.jsonl",
        # Chat Completions
        usage_line(
            "chat-1",
            {"prompt_tokens": 1_000_000, "completion_tokens": 100_000, "total_tokens": 1_100_000,
             "prompt_tokens_details": {"cached_tokens": 800_000}},
        ),
        # Responses (it was billed 0/0/0 before)
        usage_line(
            "resp-1",
            {"input_tokens": 1_000_000, "output_tokens": 100_000, "total_tokens": 1_100_000,
             "input_tokens_details": {"cached_tokens": 800_000},
             "output_tokens_details": {"reasoning_tokens": 20_000}},
        ),
        # a gateway that leaves out what is zero
        usage_line("chat-2", {"prompt_tokens": 10, "completion_tokens": 5}),
        usage_line("resp-2", {"input_tokens": 10, "output_tokens": 5}),
        usage_line("embed-1", {"prompt_tokens": 8, "total_tokens": 8}),  # embeddings
    )  # fmt: skip

    assert tailer(tmp_path, spool).poll() == 5

    counts = {
        e["id"]: tuple(
            e["data"][k]
            for k in ("input_tokens", "cached_tokens", "uncached_input_tokens", "output_tokens")
        )
        for e in spooled(spool)
    }
    assert counts == {
        "chat-1": ("1000000", "800000", "200000", "100000"),
        "resp-1": ("1000000", "800000", "200000", "100000"),
        "chat-2": ("10", "0", "10", "5"),
        "resp-2": ("10", "0", "10", "5"),
        "embed-1": ("8", "0", "8", "0"),
    }


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (usage_line("r", {"input_tokens": 10}), "usage.output_tokens is missing"),
        (usage_line("r", {"completion_tokens": 5}), "usage.prompt_tokens is missing"),
        (usage_line("r", {"total_tokens": 5}), "usage has neither prompt_tokens"),
        (usage_line("r", {"prompt_tokens": 5, "output_tokens": 1}), "usage mixes"),
        (
            usage_line("r", {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}),
            "usage cached_tokens (9) exceeds prompt_tokens (5)",
        ),
        (usage_line("r", {"prompt_tokens": -1}), "usage.prompt_tokens must be a non-negative"),
        (usage_line("r", {"prompt_tokens": 1.5}), "usage.prompt_tokens must be a non-negative"),
        ('{"id": "r\\ud800", "org": "acme"}', "id is not valid Unicode (a lone surrogate)"),
        (usage_line("r", {"prompt_tokens": 1}, org="ac\x00me"), "org contains a control"),
        (usage_line("r", {"prompt_tokens": 1}, created=1e300), "created:"),
        ("[" * 100_000, "maximum recursion depth"),
    ],
)
def test_a_line_that_is_not_a_usable_record_is_set_aside_with_the_reason(
    tmp_path, spool, line, reason
):
    write(tmp_path / "usage.jsonl", line, record("ok"))

    assert tailer(tmp_path, spool).poll() == 1

    assert [e["id"] for e in spooled(spool)] == ["ok"]
    [kept] = spool.rejected()
    assert reason in kept["reasons"][0]


def test_a_lone_surrogate_anywhere_in_a_line_is_set_aside_and_the_collector_goes_on(
    tmp_path, spool
):
    # given a line whose model name has a lone surrogate (it made the collector exit 1 on
    # every start before)
    write(
        tmp_path / "usage.jsonl",
        '{"id": "bad", "org": "acme", "model": "llama\\udc80", "created": 1790812800, '
        '"usage": {"prompt_tokens": 1}}',
        record("after"),
    )

    assert tailer(tmp_path, spool).poll() == 1
    assert tailer(tmp_path, spool).poll() == 0  # a restart does not trip on it again

    assert [e["id"] for e in spooled(spool)] == ["after"]
    assert spool.rejected()[0]["reasons"] == ["model is not valid Unicode (a lone surrogate)"]


def test_replaying_a_file_that_is_not_prometheus_text_warns_like_a_live_scrape(
    tmp_path, spool, caplog
):
    recorded = tmp_path / "replay" / "dedicated-1"
    recorded.mkdir(parents=True)
    for minute, body in enumerate(
        [VLLM.format(prompt=100, generation=10), "<html>502 Bad Gateway</html>",
         VLLM.format(prompt=250, generation=40)]
    ):  # fmt: skip
        stamp = iso(T0 + 30 + 60 * minute).replace(":", "-")
        (recorded / f"{stamp}.prom").write_text(body)
    (recorded / "notes.prom").write_text("not named by a time")
    s = scraper(tmp_path, spool)

    assert replay(s, tmp_path / "replay") == 3

    assert totals(spool) == (250, 40)
    assert s.telemetry.scrapes.labels("failed")._value.get() == 1
    assert "scrape of dedicated-1 failed" in caplog.text
    assert "notes.prom is not named by its time" in caplog.text


def test_scraped_windows_carry_cached_and_uncached_input(tmp_path, spool):
    (tmp_path / "metrics.prom").write_text(
        "# TYPE vllm:prompt_tokens counter\n"
        'vllm:prompt_tokens_total{model_name="m"} 1000\n'
        "# TYPE vllm:prefix_cache_hits counter\n"
        'vllm:prefix_cache_hits_total{model_name="m"} 600\n'
        "# TYPE vllm:generation_tokens counter\n"
        'vllm:generation_tokens_total{model_name="m"} 70\n'
    )
    s = scraper(tmp_path, spool, cached_metric="vllm:prefix_cache_hits_total")
    s.scrape_all(T0)
    s.flush(T0 + 60)

    [event] = spooled(spool)
    assert (event["data"]["cached_tokens"], event["data"]["uncached_input_tokens"]) == (
        "600",
        "400",
    )
