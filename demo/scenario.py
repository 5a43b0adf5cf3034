"""The demo cloud's usage: a fleet in two regions, who holds which GPU when, gateway request
logs and a recorded vLLM server. Pure, deterministic functions of the simulated span, so the
demo and its end-to-end test generate the same usage.

The example catalog (``examples/demo-catalog.yaml``) is written for October 2026: contracts
begin on 1 September, acme's reservation ramps up on 16 October. The demo bills the last two
complete months, so it loads that catalog with every date moved by whole months onto them:
the first month is the contracts' first, the second holds acme's ramp.
"""

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

from core.timeparse import parse_instant

CATALOG = Path(__file__).resolve().parent.parent / "examples" / "demo-catalog.yaml"
CATALOG_MONTH = date(2026, 10, 1)  # the month the example catalog is written to be billed for

EU_NODE = "eu-north-gpu-1"
US_NODE = "us-east-gpu-1"
VLLM_ENDPOINT = "acme-llama-70b"
SCRAPE_SECONDS = 900
HOUR = timedelta(hours=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1, day=min(day.day, 28))


def month_start(moment: datetime) -> date:
    return moment.astimezone(UTC).date().replace(day=1)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


@dataclass(frozen=True)
class Span:
    """What the demo simulates, ``[start, end)``, and the two complete months it bills."""

    first_month: date  # the contracts' first month
    last_month: date  # the last complete month
    start: datetime
    end: datetime  # the end of the last month, or the current hour (month to date)

    @property
    def months(self) -> list[date]:
        """The months billed (closed, invoiced)."""
        return [self.first_month, self.last_month]

    @property
    def touched_months(self) -> list[date]:
        """Every month the simulation covers part of, the current one included."""
        months, month = [], self.start.date().replace(day=1)
        while midnight(month) < self.end:
            months.append(month)
            month = add_months(month, 1)
        return months

    @property
    def shift_months(self) -> int:
        """How far the example catalog's dates move."""
        return (self.last_month.year - CATALOG_MONTH.year) * 12 + (
            self.last_month.month - CATALOG_MONTH.month
        )


def span_for(now: datetime, days: int | None = None) -> Span:
    """The last two complete months before ``now`` and the current month up to the last
    whole hour (so the portal's current period has usage too). With ``days`` (tests): only
    the last ``days`` days of the last complete month; both months are still billed."""
    last = add_months(month_start(now), -1)
    first = add_months(last, -1)
    if days is None:
        start = midnight(first)
        end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    else:
        end = midnight(add_months(last, 1))
        start = max(midnight(first), end - timedelta(days=days))
    return Span(first_month=first, last_month=last, start=start, end=end)


def shifted_catalog(span: Span) -> dict[str, Any]:
    """The example catalog with every date moved by ``span.shift_months`` whole months."""

    def shift(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shift(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shift(v) for v in value]
        if isinstance(value, date) and not isinstance(value, datetime):
            return add_months(value, span.shift_months)
        return value

    document: dict[str, Any] = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    return shift(document) if span.shift_months else document


# The fleet: one simulated node per region (the GPU collector's --simulate file).
@dataclass(frozen=True)
class Device:
    node: str
    region: str
    uuid: str  # what allocations name: a GPU's or a MIG instance's NVML UUID
    gpu_model: str  # as the collector reports it (H100, H200, B200, A100)
    share: tuple[int, int] = (1, 1)  # fraction of the physical GPU (MIG slices / 7)


def fleets(span: Span) -> dict[str, dict[str, Any]]:
    """Fleet files per node, with one XID fault during one of acme's burst jobs."""
    weekdays = [d for d in _weekdays(span) if d < add_months(span.last_month, 1)]
    fault_day = weekdays[-3] if len(weekdays) >= 3 else span.start.date()
    fault_at = midnight(fault_day) + timedelta(hours=14, minutes=20)
    return {
        EU_NODE: {
            "node": EU_NODE,
            "region": "eu-north",
            "gpus": [
                *({"model": "H100-SXM", "uuid": f"GPU-eun-h100-{i}"} for i in range(8)),
                *({"model": "H200", "uuid": f"GPU-eun-h200-{i}"} for i in range(4)),
                *({"model": "B200", "uuid": f"GPU-eun-b200-{i}"} for i in range(2)),
                {
                    "model": "A100-40GB",
                    "uuid": "GPU-eun-a100-0",
                    "mig": [
                        {"profile": "3g.20gb", "uuid": "MIG-eun-a100-0-0"},
                        {"profile": "3g.20gb", "uuid": "MIG-eun-a100-0-1"},
                        {"profile": "1g.5gb", "uuid": "MIG-eun-a100-0-2"},
                    ],
                },
                {
                    "model": "A100-40GB",
                    "uuid": "GPU-eun-a100-1",
                    "mig": [{"profile": "7g.40gb", "uuid": "MIG-eun-a100-1-0"}],
                },
            ],
            "faults": [
                {
                    "at": fault_at.isoformat().replace("+00:00", "Z"),
                    "gpu": "GPU-eun-h100-6",
                    "kind": "xid",
                    "xid": 79,
                },
            ],  # fmt: skip
        },
        US_NODE: {
            "node": US_NODE,
            "region": "us-east",
            "gpus": [
                *({"model": "H100-SXM", "uuid": f"GPU-use-h100-{i}"} for i in range(4)),
                *({"model": "H200", "uuid": f"GPU-use-h200-{i}"} for i in range(2)),
                *({"model": "B200", "uuid": f"GPU-use-b200-{i}"} for i in range(2)),
            ],
        },
    }


def devices() -> dict[str, Device]:
    """Every billable device of the fleets, by UUID."""
    found: dict[str, Device] = {}
    fake = Span(CATALOG_MONTH, CATALOG_MONTH, midnight(CATALOG_MONTH), midnight(CATALOG_MONTH))
    for fleet in fleets(fake).values():
        for gpu in fleet["gpus"]:
            model = gpu["model"].split("-")[0]
            if not gpu.get("mig"):
                found[gpu["uuid"]] = Device(fleet["node"], fleet["region"], gpu["uuid"], model)
            for instance in gpu.get("mig", []):
                slices = int(instance["profile"][0])
                found[instance["uuid"]] = Device(
                    fleet["node"], fleet["region"], instance["uuid"], model, (slices, 7)
                )
    return found


def faults(span: Span) -> list[tuple[str, datetime]]:
    """(GPU UUID, when) of the faults that make a window unbillable."""
    return [
        (fault["gpu"], parse_instant(fault["at"]))
        for fleet in fleets(span).values()
        for fault in fleet.get("faults", [])
        if fault["kind"] == "xid"
    ]


# Who holds what: the allocation schedule.
@dataclass(frozen=True)
class Hold:
    org: str
    device: str  # UUID
    start: datetime
    end: datetime


def _days(span: Span) -> list[date]:
    day, days = span.start.date(), []
    while midnight(day) < span.end:
        days.append(day)
        day += timedelta(days=1)
    return days


def _weekdays(span: Span) -> list[date]:
    return [day for day in _days(span) if day.weekday() < 5]


def schedule(span: Span) -> list[Hold]:
    """Every allocation, clipped to the span. Per org, what its contract bills:

    - acme: 4 H100s (its reservation) all along, 2 more from the 10th of the last month (burst
      until the ramp to 6 on the 16th covers them), 2 more on weekdays 08-18 (burst), and a
      3g A100 MIG slice (on demand, volume tiers).
    - hooli: its 2 reserved H200s, a third on the 5th-11th of each month (burst at list), and a
      whole A100 (7g instance) on the 1st-20th.
    - initech: a B200 on weekdays 06-18 and a 3g A100 slice: below its 5,000 EUR commitment.
    - umbrella: 2 US B200s on weekdays 09-17, an H200 08-20 and a 1g A100 slice: its credits
      pay most of the first month.
    - globex: 2 US H100s all along, 2 more nightly 00-06, an H200 on the 1st-15th.
    """
    holds: list[Hold] = []

    def hold(org: str, device: str, start: datetime, end: datetime) -> None:
        start, end = max(start, span.start), min(end, span.end)
        if start < end:
            holds.append(Hold(org, device, start, end))

    whole = (span.start, span.end)
    for i in range(4):
        hold("acme", f"GPU-eun-h100-{i}", *whole)
    tenth = midnight(span.last_month.replace(day=10))
    for i in (4, 5):
        hold("acme", f"GPU-eun-h100-{i}", tenth, span.end)
    hold("acme", "MIG-eun-a100-0-1", *whole)
    hold("hooli", "GPU-eun-h200-0", *whole)
    hold("hooli", "GPU-eun-h200-1", *whole)
    hold("initech", "MIG-eun-a100-0-0", *whole)
    hold("umbrella", "MIG-eun-a100-0-2", *whole)
    hold("globex", "GPU-use-h100-0", *whole)
    hold("globex", "GPU-use-h100-1", *whole)
    for month in span.touched_months:
        hold(
            "hooli",
            "GPU-eun-h200-2",
            midnight(month.replace(day=5)),
            midnight(month.replace(day=12)),
        )
        hold("hooli", "MIG-eun-a100-1-0", midnight(month), midnight(month.replace(day=21)))
        hold("globex", "GPU-use-h200-0", midnight(month), midnight(month.replace(day=16)))
    for day in _days(span):
        base = midnight(day)
        for i in (2, 3):
            hold("globex", f"GPU-use-h100-{i}", base, base + 6 * HOUR)
    for day in _weekdays(span):
        base = midnight(day)
        for i in (6, 7):
            hold("acme", f"GPU-eun-h100-{i}", base + 8 * HOUR, base + 18 * HOUR)
        hold("initech", "GPU-eun-b200-0", base + 6 * HOUR, base + 18 * HOUR)
        for i in (0, 1):
            hold("umbrella", f"GPU-use-b200-{i}", base + 9 * HOUR, base + 17 * HOUR)
        hold("umbrella", "GPU-use-h200-1", base + 8 * HOUR, base + 20 * HOUR)
    return holds


# Tokens: gateway request logs (shared endpoints) and a recorded vLLM server (dedicated).
# (org, model, requests per hour at most, mean prompt tokens, completion share, batch)
GATEWAY_STREAMS = [
    ("globex", "llama-3.1-70b", 4, 650_000, 0.12, True),
    ("globex", "llama-3.1-8b", 3, 200_000, 0.10, False),
    ("initech", "llama-3.1-70b", 2, 150_000, 0.15, False),
    ("initech", "llama-3.1-8b", 2, 100_000, 0.20, False),
    ("umbrella", "llama-3.1-8b", 3, 120_000, 0.15, False),
    ("acme", "llama-3.1-8b", 2, 80_000, 0.25, False),
    ("hooli", "llama-3.1-70b", 1, 60_000, 0.20, False),
]


def _hours(span: Span) -> Iterator[datetime]:
    moment = span.start
    while moment < span.end:
        yield moment
        moment += HOUR


# An embeddings model the gateway started serving before finance added a product for it: the
# demo leaves its usage on the finance console's unbilled-usage page (no_matching_product).
UNPRICED_STREAM = ("initech", "bge-m3", 42_000)


def gateway_records(span: Span) -> Iterator[dict[str, Any]]:
    """OpenAI-compatible usage records, one per request, in time order."""
    rng = random.Random(f"gateway/{span.start.isoformat()}")
    counter = 0
    unpriced_at = max((h for h in _hours(span) if 8 <= h.hour < 20), default=None)
    for hour in _hours(span):
        busy = 8 <= hour.hour < 20
        records: list[dict[str, Any]] = []
        if hour == unpriced_at:
            org, model, tokens = UNPRICED_STREAM
            records.append(
                {"id": "embd-demo-unpriced", "object": "list", "org": org, "model": model,
                 "created": int((hour + timedelta(minutes=7)).timestamp()),
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                 "endpoint": "gateway-eu-1"}
            )  # fmt: skip
        for org, model, most, mean, completion, batch in GATEWAY_STREAMS:
            for _ in range(rng.randint(0 if not busy else 1, most)):
                counter += 1
                prompt = max(1, int(rng.gauss(mean, mean / 4)))
                cached = int(prompt * rng.choice((0, 0, 0.25, 0.5)))
                at = hour + timedelta(seconds=rng.randrange(3600))
                records.append(
                    {
                        "id": f"chatcmpl-demo-{counter:08d}",
                        "object": "chat.completion",
                        "org": org,
                        "model": model,
                        "created": int(at.timestamp()),
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": int(prompt * completion),
                            "total_tokens": prompt + int(prompt * completion),
                            "prompt_tokens_details": {"cached_tokens": cached},
                        },
                        "batch": batch,
                        "endpoint": "gateway-eu-1" if org != "globex" else "gateway-us-1",
                    }
                )
        yield from sorted(records, key=lambda r: int(r["created"]))


def write_gateway_log(span: Span, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for record in gateway_records(span):
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count


@dataclass(frozen=True)
class Scrape:
    at: datetime
    engines: dict[str, tuple[int, int]]  # engine -> (prompt tokens total, generation total)


def vllm_scrapes(span: Span) -> list[Scrape]:
    """acme's dedicated vLLM server (two engines), scraped every 15 minutes: it restarts once
    (its counters start from zero again), and an hour of scrapes failed (no file)."""
    rng = random.Random(f"vllm/{span.start.isoformat()}")
    restart = span.start + (span.end - span.start) * 2 / 3
    outage = (span.start + (span.end - span.start) / 3, HOUR)
    totals = {"0": [0, 0], "1": [0, 0]}
    scrapes = []
    moment = span.start + timedelta(seconds=30)
    restarted = False
    while moment < span.end:
        if not restarted and moment >= restart:
            totals = {"0": [0, 0], "1": [0, 0]}
            restarted = True
        for counters in totals.values():
            prompt = rng.randrange(40_000, 160_000 if 7 <= moment.hour < 21 else 60_000)
            counters[0] += prompt
            counters[1] += prompt * rng.randrange(8, 20) // 100
        if not outage[0] <= moment < outage[0] + outage[1]:
            scrapes.append(Scrape(moment, {k: (v[0], v[1]) for k, v in totals.items()}))
        moment += timedelta(seconds=SCRAPE_SECONDS)
    return scrapes


PROM = """# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
{prompt}
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
{generation}
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
{running}
"""


def write_vllm_recording(span: Span, directory: Path) -> int:
    """DIR/<endpoint>/<time>.prom, as the token collector's --replay reads them."""
    target = directory / VLLM_ENDPOINT
    target.mkdir(parents=True, exist_ok=True)
    scrapes = vllm_scrapes(span)
    for scrape in scrapes:
        labels = {e: f'{{engine="{e}",model_name="llama-3.1-70b"}}' for e in scrape.engines}
        text = PROM.format(
            prompt="\n".join(f"vllm:prompt_tokens_total{labels[e]} {v[0]}.0"
                             for e, v in scrape.engines.items()),
            generation="\n".join(f"vllm:generation_tokens_total{labels[e]} {v[1]}.0"
                                 for e, v in scrape.engines.items()),
            running="\n".join(f"vllm:num_requests_running{labels[e]} 3.0" for e in scrape.engines),
        )  # fmt: skip
        name = scrape.at.strftime("%Y-%m-%dT%H-%M-%SZ") + ".prom"
        (target / name).write_text(text, encoding="utf-8")
    return len(scrapes)
