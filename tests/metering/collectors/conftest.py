import math
from collections.abc import Iterator
from typing import Any

import pytest

from metering.collectors.allocations import Allocation, AllocationsUnavailable, RecordedAllocations
from metering.collectors.common import SimulatedClock, parse_time
from metering.collectors.gpu import GpuCollector
from metering.collectors.nvml import Nvml
from metering.collectors.sender import Sender
from metering.collectors.simnvml import SimulatedNVML
from metering.collectors.spool import Spool
from metering.collectors.telemetry import Telemetry

from .fakeapi import KEY, FakeApi

T0 = parse_time("2026-10-01T00:00:00Z")

FLEET: dict[str, Any] = {
    "node": "node-1",
    "region": "eu-north",
    "gpus": [
        {"model": "H100-SXM", "uuid": "GPU-h100"},
        {"model": "H200", "uuid": "GPU-h200"},
        {"model": "B200", "uuid": "GPU-b200"},
        {
            "model": "A100-40GB",
            "uuid": "GPU-a100",
            "mig": [
                {"profile": "3g.20gb", "uuid": "MIG-3g-a"},
                {"profile": "3g.20gb", "uuid": "MIG-3g-b"},
                {"profile": "1g.5gb", "uuid": "MIG-1g"},
            ],
        },
        {
            "model": "A100-40GB",
            "uuid": "GPU-a100-full",
            "mig": [{"profile": "7g.40gb", "uuid": "MIG-7g"}],
        },
    ],
}


class StaticAllocations(RecordedAllocations):
    def __init__(self, rows: list[Allocation] | None = None) -> None:
        self.rows = rows or []
        self.down = False

    def allocations(self, node: str, start: float, end: float) -> list[Allocation]:
        if self.down:
            raise AllocationsUnavailable("down for the test")
        return [a for a in self.rows if a.start < end and (a.end is None or a.end > start)]


def held(org: str, uuid: str, start: float = T0, end: float | None = None) -> Allocation:
    return Allocation(org=org, device_uuid=uuid, start=start, end=end)


class Rig:
    """A collector on a simulated clock and NVML, with a spool in tmp_path."""

    def __init__(self, tmp_path: Any, api: FakeApi | None, fleet: dict[str, Any] = FLEET) -> None:
        self.clock = SimulatedClock(T0)
        self.sim = SimulatedNVML(fleet, self.clock.wall)
        self.allocations = StaticAllocations()
        self.spool = Spool(tmp_path / "spool.sqlite3")
        self.telemetry = Telemetry("gpu")
        self.collector = self.make_collector()
        self.mono = 0.0
        self.sender = (
            Sender(
                spool=self.spool,
                api_url=api.url,
                api_key=KEY,
                telemetry=self.telemetry,
                monotonic=lambda: self.mono,
            )
            if api
            else None
        )

    def make_collector(self, **overrides: Any) -> GpuCollector:
        options: dict[str, Any] = {
            "nvml": Nvml(self.sim),
            "allocations": self.allocations,
            "spool": self.spool,
            "telemetry": self.telemetry,
            "node": "node-1",
            "region": "eu-north",
            "window_seconds": 60,
            "sample_seconds": 10,
            **overrides,
        }
        return GpuCollector(**options)

    def run_until(self, end: float, step: float = 10) -> None:
        """Sample every ``step`` seconds up to (not including) ``end``, then close what ended."""
        moment = math.ceil(self.clock.now / step) * step
        while moment < end:
            self.clock.set(moment)
            self.collector.tick(moment)
            moment += step
        self.clock.set(end)
        self.collector.close_ended(end)
        self.collector.attribute()

    def spooled(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(item.body) for item in self.spool.batch(100_000)]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi().start()
    yield server
    server.stop()


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return Rig(tmp_path, None)
