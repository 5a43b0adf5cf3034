"""Concurrent ingestion load: client processes post batches of new events with duplicates
mixed in (their own retries and other clients' events) for a bounded time. Used by
``test_load.py`` (bounded, in the suite) and ``bench/load.py`` (longer, prints figures).
No Django here: clients talk HTTP, like collectors.

Every event is a pure function of (owner, n), so any client can send a duplicate of any
other client's event byte for byte, and the parent can recompute every expected figure."""

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
ORGS = ["load-a", "load-b", "load-c", "load-d"]


def event(owner: int, n: int, base: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{owner}-{n}",
        "source": f"node-{owner}",
        "type": "gpu.usage",
        "subject": ORGS[(owner + n) % len(ORGS)],
        "time": (base + timedelta(seconds=(owner * 7919 + n) % 86_000)).isoformat(),
        "data": {"gpu_seconds": str(n % 9 + 1), "gpu_model": "H100", "region": "eu-north"},
    }


def client_main(argv: list[str]) -> None:
    """One client process: prints a JSON report on stdout."""
    p = argparse.ArgumentParser()
    for name in ("url", "key", "base"):
        p.add_argument(f"--{name}", required=True)
    for name in ("owner", "clients", "batch"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--dup-share", type=float, default=0.2)
    args = p.parse_args(argv)
    base = datetime.fromisoformat(args.base)
    rng = random.Random(args.owner)
    headers = {
        "Authorization": f"Bearer {args.key}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    report: dict[str, Any] = {"owner": args.owner, "fresh": 0, "picked": [], "latencies": [],
                              "accepted": 0, "duplicates": 0, "rejected": 0, "sent": 0,
                              "errors": 0}  # fmt: skip
    deadline = time.monotonic() + args.seconds
    with httpx.Client(timeout=120) as http:
        while time.monotonic() < deadline:
            batch = []
            for _ in range(args.batch):
                if report["fresh"] and rng.random() < args.dup_share:
                    owner = rng.randrange(args.clients)
                    # Another client's event, perhaps not sent yet by its owner (then we are
                    # first and the owner's send is the duplicate), or one of our own.
                    n = rng.randrange(report["fresh"] + 50)
                    batch.append(event(owner, n, base))
                    report["picked"].append([owner, n])
                else:
                    batch.append(event(args.owner, report["fresh"], base))
                    report["fresh"] += 1
            body = json.dumps(batch).encode()
            while True:
                started = time.perf_counter()
                try:
                    response = http.post(args.url + "/api/v1/events", content=body, headers=headers)
                except httpx.HTTPError:
                    report["errors"] += 1
                    continue
                report["latencies"].append(time.perf_counter() - started)
                if response.status_code == 202:
                    break
                report["errors"] += 1
                time.sleep(0.1)  # a client's backoff before it resends, not a wait
            answer = response.json()
            for name in ("accepted", "duplicates", "rejected"):
                report[name] += answer[name]
            report["sent"] += len(batch)
    json.dump(report, sys.stdout)


@dataclass
class LoadResult:
    seconds: float
    clients: int
    reports: list[dict[str, Any]]
    distinct: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(r["sent"] for r in self.reports)

    def total(self, name: str) -> int:
        return sum(r[name] for r in self.reports)

    def expected_per_org(self) -> dict[str, int]:
        sums = dict.fromkeys(ORGS, 0)
        for e in self.distinct.values():
            sums[e["subject"]] += int(e["data"]["gpu_seconds"])
        return {k: v for k, v in sums.items() if v}

    @property
    def events_per_second(self) -> float:
        return self.sent / self.seconds

    def latency(self, quantile: float) -> float:
        """Request latency in seconds at ``quantile`` (0.5: the median)."""
        latencies = sorted(x for r in self.reports for x in r["latencies"])
        return latencies[max(0, int(len(latencies) * quantile) - 1)] if latencies else 0.0

    def figures(self) -> str:
        latencies = sorted(x for r in self.reports for x in r["latencies"])
        p95 = self.latency(0.95)
        return (
            f"{self.clients} client processes for {self.seconds:.0f} s: {self.sent} events sent "
            f"in {len(latencies)} requests ({self.sent / self.seconds:,.0f} events/s), "
            f"{len(self.distinct)} distinct, {self.total('accepted')} accepted, "
            f"{self.total('duplicates')} duplicates, {self.total('rejected')} rejected, "
            f"{self.total('errors')} errors; request latency p50 "
            f"{statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )


def run(*, url: str, key: str, base: datetime, clients: int, seconds: float,
        batch: int = 500, dup_share: float = 0.2) -> LoadResult:  # fmt: skip
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.loadgen",
                "--url",
                url,
                "--key",
                key,
                "--base",
                base.isoformat(),
                "--owner",
                str(i),
                "--clients",
                str(clients),
                "--batch",
                str(batch),
                "--seconds",
                str(seconds),
                "--dup-share",
                str(dup_share),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        for i in range(clients)
    ]
    reports = [json.loads(proc.communicate(timeout=seconds + 300)[0]) for proc in procs]
    result = LoadResult(seconds=seconds, clients=clients, reports=reports)
    for r in reports:
        for n in range(r["fresh"]):
            result.distinct[(r["owner"], n)] = event(r["owner"], n, base)
        for owner, n in r["picked"]:
            result.distinct.setdefault((owner, n), event(owner, n, base))
    return result


if __name__ == "__main__":
    client_main(sys.argv[1:])
