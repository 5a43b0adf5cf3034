"""The Kubernetes allocation source against a real gRPC server on a unix socket (the kubelet's
pod-resources API) and a real HTTP server speaking the Kubernetes API."""

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from metering.collectors import gpu
from metering.collectors.allocations import MappingFile, ObservedAllocations
from metering.collectors.common import SimulatedClock, iso
from metering.collectors.kubernetes import KubeletPodResources, NamespaceOrgs, kube_api_client
from metering.collectors.nvml import Nvml
from metering.collectors.simnvml import SimulatedNVML
from metering.collectors.spool import Spool
from metering.collectors.telemetry import Telemetry

from .conftest import T0
from .fakeapi import KEY, FakeApi
from .fakek8s import FakeKubeApi, FakeKubelet

# One node, 8 H100s; the eighth is MIG-partitioned into 3g + 3g + 1g instances.
NODE_FLEET: dict[str, Any] = {
    "node": "gpu-node-7",
    "gpus": [{"model": "H100-SXM", "uuid": f"GPU-{i}"} for i in range(7)]
    + [
        {
            "model": "H100-SXM",
            "uuid": "GPU-7",
            "mig": [
                {"profile": "3g.40gb", "uuid": "MIG-7a"},
                {"profile": "3g.40gb", "uuid": "MIG-7b"},
                {"profile": "1g.10gb", "uuid": "MIG-7c"},
            ],
        }
    ],
}
GPU = "nvidia.com/gpu"


@pytest.fixture
def kubelet() -> Iterator[FakeKubelet]:
    server = FakeKubelet().start()
    yield server
    server.stop()


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    server = FakeKubeApi().start()
    server.namespaces = {
        "team-acme": {"tessera.io/org": "acme", "kubernetes.io/metadata.name": "team-acme"},
        "team-globex": {"tessera.io/org": "globex"},
        "sandbox": {},
    }
    server.nodes = {"gpu-node-7": {"topology.kubernetes.io/region": "eu-north"}}
    yield server
    server.stop()


def two_pods(kubelet: FakeKubelet) -> None:
    kubelet.pods = {
        ("team-acme", "train-0"): {
            "trainer": {
                GPU: ["GPU-0", "GPU-1", "GPU-2", "GPU-3"],
                "nvidia.com/mig-3g.40gb": ["MIG-7a"],
            },
            "sidecar": {},
        },
        ("team-globex", "infer-0"): {
            "server": {GPU: ["GPU-4", "GPU-5"], "nvidia.com/mig-1g.10gb": ["MIG-7c"]},
        },
    }


class K8sRig:
    def __init__(
        self, tmp_path: Path, kubelet: FakeKubelet, kube: FakeKubeApi, **orgs: Any
    ) -> None:
        self.clock = SimulatedClock(T0)
        self.spool = Spool(tmp_path / "spool.sqlite3")
        self.telemetry = Telemetry("gpu")
        self.orgs = NamespaceOrgs(api_client=kube_api_client(kube.url), **orgs)
        self.probe = KubeletPodResources(socket_path=kubelet.socket, orgs=self.orgs)
        self.collector = gpu.GpuCollector(
            nvml=Nvml(SimulatedNVML(NODE_FLEET, self.clock.wall)),
            allocations=ObservedAllocations(self.probe, self.spool, max_gap=30),
            spool=self.spool,
            telemetry=self.telemetry,
            node="gpu-node-7",
            region="eu-north",
            window_seconds=60,
            sample_seconds=10,
        )

    def run(self, start: float, end: float, changes: dict[float, Any] | None = None) -> None:
        """Observe every second, sample every 10 s, over [start, end]; then attribute."""
        for t in range(int(start), int(end) + 1):
            (changes or {}).get(t, lambda: None)()
            self.clock.set(t)
            if t % 10 == 0:
                self.collector.tick(t)
            else:
                self.collector.observe(t)
        self.collector.attribute()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(item.body) for item in self.spool.batch(100_000)]


def per_org(events: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(e["subject"], e["data"]["gpu_uuid"]): e["data"]["gpu_seconds"] for e in events}


def test_two_pods_in_two_namespaces_bill_their_orgs_for_one_window(tmp_path, kubelet, kube):
    # given two pods holding GPUs and MIG instances of one node
    two_pods(kubelet)
    rig = K8sRig(tmp_path, kubelet, kube)

    # when the collector runs over one window
    rig.run(T0, T0 + 60)

    # then each device's window is billed to the org of the namespace of the pod that holds it
    assert per_org(rig.events()) == {
        ("acme", "GPU-0"): "60",
        ("acme", "GPU-1"): "60",
        ("acme", "GPU-2"): "60",
        ("acme", "GPU-3"): "60",
        ("acme", "MIG-7a"): "25.714286",  # 3/7 of 60 s
        ("globex", "GPU-4"): "60",
        ("globex", "GPU-5"): "60",
        ("globex", "MIG-7c"): "8.571429",  # 1/7
    }
    event = next(e for e in rig.events() if e["data"]["gpu_uuid"] == "MIG-7a")
    assert event["id"] == f"gpu-node-7/MIG-7a/{iso(T0)}/acme"
    assert event["data"]["mig_profile"] == "3g.40gb"
    assert event["data"]["window_start"] == "2026-10-01T00:00:00Z"
    # GPU-6 and MIG-7b are idle: 60 + 60 × 3/7
    assert rig.telemetry.idle_gpu_seconds._value.get() == pytest.approx(60 + 60 * 3 / 7)
    # one namespace lookup per namespace (cached), not one per observation
    assert sorted(r for r in kube.requests if "/namespaces/" in r) == [
        "/api/v1/namespaces/team-acme",
        "/api/v1/namespaces/team-globex",
    ]
    assert rig.telemetry.problems == {}


def test_a_pod_moving_to_another_namespace_mid_window_is_attributed_per_second(
    tmp_path, kubelet, kube
):
    # given acme's pod holds GPU-3
    kubelet.pods = {("team-acme", "train-0"): {"trainer": {GPU: ["GPU-3"]}}}
    rig = K8sRig(tmp_path, kubelet, kube)

    def move() -> None:  # 37 s into the window the pod is recreated in globex's namespace
        kubelet.pods = {("team-globex", "train-0"): {"trainer": {GPU: ["GPU-3"]}}}

    rig.run(T0, T0 + 60, {int(T0) + 37: move})

    assert per_org(rig.events()) == {("acme", "GPU-3"): "37", ("globex", "GPU-3"): "23"}


def test_namespaces_without_the_label_use_the_mapping_file_or_are_reported(tmp_path, kubelet, kube):
    (tmp_path / "namespaces.yaml").write_text("sandbox: initech\n")
    kubelet.pods = {
        ("sandbox", "notebook"): {"jupyter": {GPU: ["GPU-0"]}},
        ("nobody", "stray"): {"main": {GPU: ["GPU-1"]}},  # no namespace object, no mapping
    }
    rig = K8sRig(tmp_path, kubelet, kube, mapping=MappingFile(tmp_path / "namespaces.yaml"))

    rig.run(T0, T0 + 60)

    assert per_org(rig.events()) == {("initech", "GPU-0"): "60"}
    assert rig.telemetry.unattributed._value.get() == 1
    assert (
        "nobody/stray/main: namespace nobody has no tessera.io/org label"
        in (rig.telemetry.problems["unattributed"])
    )


def test_the_cached_org_stands_while_the_api_is_down(tmp_path, kubelet, kube):
    two_pods(kubelet)
    rig = K8sRig(tmp_path, kubelet, kube, ttl=5.0)
    rig.run(T0, T0 + 10)
    kube.down = True

    rig.run(T0 + 11, T0 + 60)

    assert {org for org, _ in per_org(rig.events())} == {"acme", "globex"}
    assert sum(Decimal(s) for s in per_org(rig.events()).values()) == Decimal("394.285715")


def test_a_kubelet_outage_longer_than_the_gap_is_not_billed_but_reported(tmp_path, kubelet, kube):
    kubelet.pods = {("team-acme", "train-0"): {"trainer": {GPU: ["GPU-0"]}}}
    rig = K8sRig(tmp_path, kubelet, kube)
    rig.run(T0, T0 + 9)

    kubelet.down = True
    rig.run(T0 + 10, T0 + 59)
    assert "allocation_source" in rig.telemetry.problems
    assert rig.events() == []  # the window waits for an observation past its end

    kubelet.down = False
    rig.run(T0 + 60, T0 + 60)
    # seen at 0..9 s, then nothing for 51 s (more than the 30 s gap): 9 s held, no guess after
    assert per_org(rig.events()) == {("acme", "GPU-0"): "9"}
    assert "allocation_source" not in rig.telemetry.problems


def test_the_cli_runs_with_the_kubernetes_source_and_the_region_of_the_node(
    tmp_path, kubelet, kube
):
    # given the collector as an operator starts it: the kubelet socket, the API, no --region
    two_pods(kubelet)
    fleet = tmp_path / "node.yaml"
    fleet.write_text(yaml.safe_dump(NODE_FLEET))
    api = FakeApi().start()
    try:
        code = gpu.main(
            [
                "--simulate", str(fleet),
                "--simulate-from", iso(T0), "--simulate-to", iso(T0 + 120),
                "--sample-seconds", "10", "--allocation-source", "kubernetes",
                "--kubelet-socket", kubelet.socket, "--kube-api-url", kube.url,
                "--api-url", api.url, "--api-key", KEY, "--spool", str(tmp_path / "s.sqlite3"),
                "--drain-timeout", "30",
            ]
        )  # fmt: skip
    finally:
        api.stop()

    assert code == 0
    events = list(api.events.values())
    assert {e["data"]["region"] for e in events} == {"eu-north"}  # the node's label
    assert len(events) == 16  # 8 devices held × 2 windows
    totals: dict[str, Decimal] = {}
    for e in events:
        totals[e["subject"]] = totals.get(e["subject"], Decimal(0)) + Decimal(
            e["data"]["gpu_seconds"]
        )
    assert totals == {"acme": Decimal("531.428572"), "globex": Decimal("257.142858")}


def test_without_a_region_and_no_node_label_the_collector_refuses_to_start(tmp_path, kube):
    kube.nodes = {"gpu-node-7": {}}
    code = subprocess.run(
        [
            sys.executable, "-m", "metering.collectors.gpu", "--once", "--node", "gpu-node-7",
            "--allocation-source", "kubernetes", "--kube-api-url", kube.url,
            "--api-key", KEY, "--spool", str(tmp_path / "s.sqlite3"),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert code.returncode == 2
    assert "region is required" in code.stderr


def test_the_committed_stubs_match_the_proto(tmp_path):
    root = Path(__file__).resolve().parents[3]
    proto = "metering/collectors/podresources/api.proto"
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", "-I", str(root),
            f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
            str(root / proto),
        ],
        check=True,
    )  # fmt: skip
    for name in ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"):
        generated = (tmp_path / "metering/collectors/podresources" / name).read_text()
        committed = (root / "metering/collectors/podresources" / name).read_text()
        assert generated == committed, f"{name} is stale: run bin/gen-podresources"
