"""The Slurm allocation source on recorded ``squeue --json`` output of Slurm 24.05 and 23.02,
through a stand-in ``squeue`` on PATH and through a local slurmrestd stand-in."""

import json
import os
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from metering.collectors import gpu
from metering.collectors.allocations import AllocationsUnavailable, MappingFile
from metering.collectors.common import iso
from metering.collectors.devices import DeviceInfo
from metering.collectors.slurm import SlurmJobs, expand_hostlist, gpu_indices

from .conftest import T0
from .fakeapi import KEY, FakeApi

DATA = Path(__file__).parent / "data"
NODE_FLEET: dict[str, Any] = {
    "node": "gpu-node-3",
    "gpus": [{"model": "H100-SXM", "uuid": f"GPU-{i}"} for i in range(7)]
    + [{"model": "H100-SXM", "uuid": "GPU-7", "mig": [
        {"profile": "3g.40gb", "uuid": "MIG-7a"},
        {"profile": "3g.40gb", "uuid": "MIG-7b"},
        {"profile": "1g.10gb", "uuid": "MIG-7c"},
    ]}],
}  # fmt: skip


@pytest.fixture
def squeue(tmp_path, monkeypatch) -> Path:
    """A ``squeue`` on PATH that prints the recorded JSON named in ./current (if --json)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "squeue"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--json*) ;; *) echo "squeue: want --json" >&2; exit 1;; esac\n'
        f'exec cat "$(cat {tmp_path}/current)"\n'
    )
    script.chmod(0o755)
    (tmp_path / "current").write_text(str(DATA / "squeue-24.05.json"))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return tmp_path / "current"


@pytest.fixture
def accounts(tmp_path) -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump({"acme-research": "acme", "globex-ml": "globex"}))
    return path


def devices(count: int = 8) -> dict[str, DeviceInfo]:
    return {
        f"GPU-{i}": DeviceInfo(f"GPU-{i}", f"GPU-{i}", "H100", "NVIDIA H100", index=i)
        for i in range(count)
    }


def test_hostlists_and_gres_details_in_the_shapes_slurm_prints():
    assert expand_hostlist("gpu-node-[3-4]") == ["gpu-node-3", "gpu-node-4"]
    assert expand_hostlist("gpu-[01-03,07],login1") == [
        "gpu-01", "gpu-02", "gpu-03", "gpu-07", "login1",
    ]  # fmt: skip
    assert expand_hostlist("rack[1-2]-gpu[1-2]") == [
        "rack1-gpu1",
        "rack1-gpu2",
        "rack2-gpu1",
        "rack2-gpu2",
    ]
    assert gpu_indices("gpu:h100:2(IDX:0-1)") == [0, 1]
    assert gpu_indices("gpu:h100:2(IDX:4,6)") == [4, 6]
    assert gpu_indices("gpu:a100:2(IDX:0,2),gpu:v100:1(IDX:4),mps:10") == [0, 2, 4]
    assert gpu_indices("gpu:1(IDX:N/A)") == []
    assert gpu_indices("mps:100(IDX:0)") == []


def test_running_jobs_of_this_node_map_through_their_accounts(squeue, accounts):
    probe = SlurmJobs(node="gpu-node-3", accounts=MappingFile(accounts))

    claims = probe.claims(devices(), T0)

    # job 4242 spans gpu-node-[3-4]: its first gres_detail entry is this node's; the pending,
    # completed and other-node jobs hold nothing here
    assert sorted((c.device_uuid, c.org, c.holder) for c in claims) == [
        ("GPU-0", "acme", "job 4242 (acme-research)"),
        ("GPU-1", "acme", "job 4242 (acme-research)"),
        ("GPU-2", "acme", "job 4242 (acme-research)"),
        ("GPU-3", "acme", "job 4242 (acme-research)"),
        ("GPU-4", "globex", "job 4250 (globex-ml)"),
        ("GPU-6", "globex", "job 4250 (globex-ml)"),
        ("GPU-7", "globex", "job 4251 (globex-ml)"),
    ]


def test_slurm_23_shapes_are_read_and_unmapped_accounts_reported(squeue, accounts):
    squeue.write_text(str(DATA / "squeue-23.02.json"))
    (accounts).write_text(yaml.safe_dump({"globex-ml": "globex"}))
    probe = SlurmJobs(node="gpu-node-03", accounts=MappingFile(accounts))

    claims = probe.claims(devices(4), T0)

    assert sorted((c.device_uuid, c.org, c.why_no_org) for c in claims) == [
        ("GPU-2", None, "Slurm account acme-research maps to no org"),
        ("GPU-3", None, "Slurm account acme-research maps to no org"),
    ]


def test_a_failing_squeue_makes_the_source_unavailable(squeue, accounts):
    probe = SlurmJobs(node="gpu-node-3", accounts=MappingFile(accounts), command="squeue")
    with pytest.raises(AllocationsUnavailable, match="squeue exited 1: squeue: want --json"):
        probe.claims(devices(), T0)


def test_a_collector_run_with_slurm_bills_two_jobs_to_two_orgs(tmp_path, squeue, accounts):
    # given the GPU collector started for a Slurm node with the account mapping
    fleet = tmp_path / "node.yaml"
    fleet.write_text(yaml.safe_dump(NODE_FLEET))
    api = FakeApi().start()
    try:
        code = gpu.main(
            [
                "--simulate", str(fleet), "--region", "us-east",
                "--simulate-from", iso(T0), "--simulate-to", iso(T0 + 60),
                "--sample-seconds", "10", "--allocation-source", "slurm",
                "--slurm-accounts-file", str(accounts),
                "--api-url", api.url, "--api-key", KEY, "--spool", str(tmp_path / "s.sqlite3"),
                "--drain-timeout", "30",
            ]
        )  # fmt: skip
    finally:
        api.stop()

    assert code == 0
    got = {
        (e["subject"], e["data"]["gpu_uuid"]): e["data"]["gpu_seconds"] for e in api.events.values()
    }
    assert got == {
        **{("acme", f"GPU-{i}"): "60" for i in range(4)},
        ("globex", "GPU-4"): "60",
        ("globex", "GPU-6"): "60",
        # index 7 is a GPU in MIG mode: the job holds every instance of it
        ("globex", "MIG-7a"): "25.714286",
        ("globex", "MIG-7b"): "25.714286",
        ("globex", "MIG-7c"): "8.571429",
    }
    assert sum(Decimal(v) for k, v in got.items() if k[0] == "globex") == Decimal("180.000001")


class FakeSlurmrestd:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.headers: list[dict[str, str]] = []
        rest = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                rest.headers.append(dict(self.headers))
                ok = self.path == "/slurm/v0.0.41/jobs" and self.headers.get("X-SLURM-USER-TOKEN")
                body = json.dumps(rest.document if ok else {"errors": [{"error": "denied"}]})
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slurm/v0.0.41/jobs"


@pytest.fixture
def slurmrestd() -> Iterator[FakeSlurmrestd]:
    server = FakeSlurmrestd(json.loads((DATA / "squeue-24.05.json").read_text()))
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_slurmrestd_with_a_jwt(slurmrestd, accounts):
    probe = SlurmJobs(
        node="gpu-node-4", accounts=MappingFile(accounts), url=slurmrestd.url,
        user="tessera", token="jwt-token",
    )  # fmt: skip

    claims = probe.claims(devices(), T0)

    assert {c.device_uuid for c in claims} == {f"GPU-{i}" for i in range(8)}  # 2nd node of 4242
    assert slurmrestd.headers[0]["X-SLURM-USER-NAME"] == "tessera"
    without = SlurmJobs(node="gpu-node-4", accounts=MappingFile(accounts), url=slurmrestd.url)
    with pytest.raises(AllocationsUnavailable, match="slurmrestd HTTP 401"):
        without.claims(devices(), T0)
