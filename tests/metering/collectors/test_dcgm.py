"""The DCGM exporter as device reader and allocation source, on a recorded scrape of
dcgm-exporter (8 H100s, one in MIG mode, Kubernetes pod labels) served over HTTP."""

import json
import threading
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from metering.collectors import gpu
from metering.collectors.allocations import MappingFile, ObservedAllocations
from metering.collectors.common import iso
from metering.collectors.dcgm import DcgmExporter, parse_scrape
from metering.collectors.kubernetes import NamespaceOrgs
from metering.collectors.spool import Spool
from metering.collectors.telemetry import Telemetry

from .conftest import T0
from .fakeapi import KEY, FakeApi

SCRAPE = (Path(__file__).parent / "data" / "dcgm-exporter.prom").read_text()
UUIDS = [
    "GPU-e0f20993-85c9-5a72-8680-6692da291217",
    "GPU-040a1416-02fe-5e5c-a9d3-4030b1a05119",
    "GPU-29b0b19d-dbfe-5cf0-85b2-975615b90112",
    "GPU-213c8b0f-762b-54b7-8944-3d537bf832e3",
    "GPU-537f0cc6-5afc-56a8-8a6d-81923934d520",
    "GPU-42fc0682-33f7-59da-adad-46f8067bc022",
    "GPU-098b99bb-f282-5856-b381-88e99c3318e5",
    "GPU-cc2f3405-7898-5406-813d-05d2a645fc8d",
]
MIG = {i: f"MIG-{UUIDS[7]}/{i}" for i in (1, 2, 9)}


class Exporter:
    """dcgm-exporter's /metrics, serving ``text`` (a test edits it between scrapes)."""

    def __init__(self) -> None:
        self.text = SCRAPE
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                exporter.scrapes += 1
                body = exporter.text.encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    server = Exporter()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def namespaces(tmp_path) -> Path:
    path = tmp_path / "namespaces.yaml"
    path.write_text(yaml.safe_dump({"team-acme": "acme", "team-globex": "globex"}))
    return path


def make(tmp_path: Path, exporter: Exporter, namespaces: Path) -> tuple[gpu.GpuCollector, Spool]:
    dcgm = DcgmExporter(
        exporter.url, orgs=NamespaceOrgs(api_client=None, mapping=MappingFile(namespaces))
    )
    spool = Spool(tmp_path / "spool.sqlite3")
    collector = gpu.GpuCollector(
        nvml=dcgm,
        allocations=ObservedAllocations(dcgm, spool, max_gap=30),
        spool=spool,
        telemetry=Telemetry("gpu"),
        node="gpu-node-5",
        region="eu-north",
        window_seconds=60,
        sample_seconds=10,
    )
    return collector, spool


def run(collector: gpu.GpuCollector, start: float, end: float, changes: dict[float, Any]) -> None:
    for t in range(int(start), int(end) + 1, 10):
        changes.get(t, lambda: None)()
        collector.tick(t)
    collector.attribute()


def spooled(spool: Spool) -> dict[str, dict[str, Any]]:
    return {json.loads(i.body)["data"]["gpu_uuid"]: json.loads(i.body) for i in spool.batch(1000)}


def test_the_recorded_scrape_gives_eight_gpus_and_three_mig_instances():
    rows, parents = parse_scrape(SCRAPE)

    assert sorted(rows) == sorted([*UUIDS[:7], *MIG.values()])
    assert list(parents) == [UUIDS[7]]  # a GPU in MIG mode bills through its instances
    mig = rows[MIG[1]].device
    assert (mig.gpu_model, mig.mig_profile, mig.fraction, mig.index) == (
        "H100",
        "3g.40gb",
        Fraction(3, 7),
        7,
    )
    assert rows[MIG[1]].holders == {("team-acme", "notebook-0", "jupyter")}
    assert rows[UUIDS[5]].holders == set()


def test_a_dcgm_run_bills_the_pods_orgs_with_the_collectors_windows_ids_and_health(
    tmp_path, exporter, namespaces
):
    collector, spool = make(tmp_path, exporter, namespaces)

    def later() -> None:  # 30 s in: GPU 0 used 90 kJ more, GPU 2 had a fatal XID
        xid_line = [
            ln
            for ln in SCRAPE.splitlines()
            if ln.startswith("DCGM_FI_DEV_XID_ERRORS") and UUIDS[2] in ln
        ][0]
        exporter.text = SCRAPE.replace("} 52000000000\n", "} 52090000000\n", 1).replace(
            xid_line, xid_line.rsplit(" ", 1)[0] + " 79"
        )

    run(collector, T0, T0 + 60, {int(T0) + 30: later})

    events = spooled(spool)
    assert {uuid: (e["subject"], e["data"]["gpu_seconds"]) for uuid, e in events.items()} == {
        UUIDS[0]: ("acme", "60"),
        UUIDS[1]: ("acme", "60"),
        UUIDS[2]: ("acme", "0"),  # XID 79 in the window: not billed, and the event says why
        UUIDS[3]: ("globex", "60"),
        UUIDS[4]: ("globex", "60"),
        MIG[1]: ("acme", "25.714286"),
        MIG[9]: ("globex", "8.571429"),
    }
    assert events[UUIDS[2]]["data"]["unbillable_reason"] == "xid_79"
    assert events[UUIDS[2]]["data"]["allocated_seconds"] == "60"
    first = events[UUIDS[0]]
    assert first["id"] == f"gpu-node-5/{UUIDS[0]}/{iso(T0)}/acme"
    assert first["source"] == "tessera-gpu-collector/gpu-node-5"
    assert first["data"]["energy_joules"] == "90000"
    assert first["data"]["utilization_avg"] == "97"
    assert first["data"]["memory_used_bytes"] == 78890 * 1024 * 1024
    assert events[MIG[1]]["data"]["utilization_avg"] == "51.23"  # GR engine active on MIG
    assert events[MIG[1]]["data"]["energy_joules"] is None  # energy is per GPU
    # GPU 5's XID 43 was there before the collector started, and is an application's anyway
    assert UUIDS[5] not in events
    assert exporter.scrapes == 8  # one per sample: the reader and the allocation probe share it


def test_an_exporter_that_stops_answering_is_a_gap_not_a_guess(tmp_path, exporter, namespaces):
    collector, spool = make(tmp_path, exporter, namespaces)
    run(collector, T0, T0 + 20, {})

    exporter.text = "<html>502 Bad Gateway</html>"
    run(collector, T0 + 30, T0 + 110, {})
    assert "nvml" in collector.telemetry.problems
    assert "allocation_source" in collector.telemetry.problems

    exporter.text = SCRAPE
    run(collector, T0 + 120, T0 + 180, {})

    events = [json.loads(i.body)["data"] for i in spool.batch(1000)]
    assert sorted({e["window_start"] for e in events}) == [iso(T0), iso(T0 + 120)]
    # the first window was seen for 20 s before the exporter went away: 20 s, not 60
    first = {e["gpu_uuid"]: e["gpu_seconds"] for e in events if e["window_start"] == iso(T0)}
    assert first[UUIDS[0]] == "20"
    assert first[MIG[9]] == "2.857143"  # 20 s × 1/7
    assert collector.telemetry.gaps._value.get() == 1


def test_the_cli_with_dcgm_for_devices_and_allocations(tmp_path, exporter, namespaces):
    api = FakeApi().start()
    try:
        code = gpu.main(
            [
                "--once", "--device-source", "dcgm", "--allocation-source", "dcgm",
                "--dcgm-url", exporter.url, "--namespace-orgs-file", str(namespaces),
                "--node", "gpu-node-5", "--region", "eu-north",
                "--api-url", api.url, "--api-key", KEY, "--spool", str(tmp_path / "s.sqlite3"),
            ]
        )  # fmt: skip
    finally:
        api.stop()
    assert code == 0
