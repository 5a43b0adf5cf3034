"""Kubernetes as an allocation source: the kubelet says which pod holds which GPU, the pod's
namespace says which org (SPEC §4).

- ``KubeletPodResources``: ``List`` on the kubelet's pod-resources gRPC API (``podresources/v1``,
  the node's ``/var/lib/kubelet/pod-resources/kubelet.sock``) → the device ids of every container,
  for the resources the NVIDIA device plugin advertises (``nvidia.com/gpu``,
  ``nvidia.com/mig-<profile>``): GPU UUIDs (``GPU-…``) and MIG device UUIDs (``MIG-…``); the
  plugin's ``index`` id strategy (``"0"``, ``"1"``) and time-slicing replicas (``GPU-…::2``)
  are mapped to the device too.
- ``NamespaceOrgs``: the org is a label of the pod's namespace (``tessera.io/org`` by default),
  read through the Kubernetes API with the official client, cached; a mapping file (namespace →
  org) answers for namespaces without the label and while the API cannot be reached.
"""

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from .allocations import AllocationsUnavailable, Claim, MappingFile
from .devices import DeviceInfo
from .podresources import api_pb2, api_pb2_grpc

log = logging.getLogger("tessera.collectors.kubernetes")

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
DEFAULT_RESOURCES = ("nvidia.com/gpu", "nvidia.com/mig-")
DEFAULT_ORG_LABEL = "tessera.io/org"
DEFAULT_REGION_LABEL = "topology.kubernetes.io/region"


def kube_api_client(url: str | None = None, token_file: str | None = None) -> Any:
    """An ``kubernetes.client.ApiClient``: for ``url`` (with a bearer token read from
    ``token_file``, if given), else the in-cluster service account, else ~/.kube/config."""
    from kubernetes import client, config

    if url:
        configuration = client.Configuration()
        configuration.host = url.rstrip("/")
        if token_file:
            with open(token_file, encoding="utf-8") as handle:
                configuration.api_key = {"authorization": "Bearer " + handle.read().strip()}
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


@dataclass
class _Cached:
    org: str | None
    why: str
    until: float  # monotonic seconds


class NamespaceOrgs:
    """Namespace → org slug, from a namespace label, cached ``ttl`` seconds; then the file."""

    def __init__(
        self,
        *,
        api_client: Any | None,
        label: str = DEFAULT_ORG_LABEL,
        mapping: MappingFile | None = None,
        ttl: float = 60.0,
        timeout: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core: Any = None
        if api_client is not None:
            from kubernetes import client

            self.core = client.CoreV1Api(api_client)
        self.label = label
        self.mapping = mapping or MappingFile(None)
        self.ttl = ttl
        self.timeout = timeout
        self.monotonic = monotonic
        self._cache: dict[str, _Cached] = {}

    def org_of(self, namespace: str) -> tuple[str | None, str]:
        """(org, why not) for a namespace; the org is None when neither the label nor the
        mapping file names one, and the reason says what was tried."""
        now = self.monotonic()
        cached = self._cache.get(namespace)
        if cached is not None and cached.until > now:
            return cached.org, cached.why
        org, why = self._lookup(namespace, cached)
        self._cache[namespace] = _Cached(org, why, now + self.ttl)
        return org, why

    def _lookup(self, namespace: str, stale: _Cached | None) -> tuple[str | None, str]:
        from_file = self.mapping.get(namespace)
        if self.core is None:
            if from_file:
                return from_file, ""
            return None, f"namespace {namespace} is not in the mapping file"
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            found = self.core.read_namespace(namespace, _request_timeout=self.timeout)
            labels = (found.metadata.labels if found.metadata else None) or {}
        except ApiException as exc:
            if exc.status == 404:
                labels = {}
            else:
                return self._unreachable(namespace, f"HTTP {exc.status} {exc.reason}", stale)
        except (HTTPError, OSError) as exc:
            return self._unreachable(namespace, f"{type(exc).__name__}: {exc}", stale)
        if labels.get(self.label):
            return str(labels[self.label]), ""
        if from_file:
            return from_file, ""
        return None, f"namespace {namespace} has no {self.label} label and no mapping"

    def _unreachable(
        self, namespace: str, error: str, stale: _Cached | None
    ) -> tuple[str | None, str]:
        log.warning("Kubernetes API: reading namespace %s failed: %s", namespace, error)
        if stale is not None and stale.org is not None:
            return stale.org, ""  # the last answer stands until the API answers again
        from_file = self.mapping.get(namespace)
        if from_file:
            return from_file, ""
        return None, f"namespace {namespace}: Kubernetes API unreachable ({error}), no mapping"


def node_region(api_client: Any, node: str, label: str = DEFAULT_REGION_LABEL) -> str | None:
    """The node's region label (``topology.kubernetes.io/region``), or None."""
    from kubernetes import client

    found = client.CoreV1Api(api_client).read_node(node, _request_timeout=10)
    labels = (found.metadata.labels if found.metadata else None) or {}
    value = labels.get(label)
    return str(value) if value else None


def device_for(device_id: str, devices: Mapping[str, DeviceInfo]) -> list[str]:
    """The billable device uuids a device plugin id names (see the module docstring)."""
    base = device_id.split("::", 1)[0]
    if base.isdigit():
        index = int(base)
        return sorted(u for u, d in devices.items() if d.index == index) or [device_id]
    if base in devices or not any(d.gpu_uuid == base for d in devices.values()):
        return [base]
    return sorted(u for u, d in devices.items() if d.gpu_uuid == base)  # a GPU in MIG mode


class KubeletPodResources:
    """``List`` on the kubelet's pod-resources socket → who holds which device now."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        socket_path: str = DEFAULT_SOCKET,
        orgs: NamespaceOrgs,
        resources: Sequence[str] = DEFAULT_RESOURCES,
        timeout: float = 10.0,
    ) -> None:
        self.target = f"unix://{socket_path}"
        self.orgs = orgs
        self.resources = tuple(resources)
        self.timeout = timeout
        self.channel = grpc.insecure_channel(self.target)
        self.stub = api_pb2_grpc.PodResourcesListerStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _wanted(self, resource: str) -> bool:
        return any(
            resource == r or (r.endswith("-") and resource.startswith(r)) for r in self.resources
        )

    def claims(self, devices: Mapping[str, DeviceInfo], now: float) -> list[Claim]:
        try:
            response = self.stub.List(api_pb2.ListPodResourcesRequest(), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise AllocationsUnavailable(
                f"kubelet pod-resources {self.target}: {exc.code().name} {exc.details()}"
            ) from exc
        claims = []
        for pod in response.pod_resources:
            org, why = self.orgs.org_of(pod.namespace)
            for container in pod.containers:
                holder = f"{pod.namespace}/{pod.name}/{container.name}"
                for group in container.devices:
                    if not self._wanted(group.resource_name):
                        continue
                    for device_id in group.device_ids:
                        for uuid in device_for(device_id, devices):
                            claims.append(Claim(uuid, org, holder, why))
        return claims
