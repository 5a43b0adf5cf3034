"""NVIDIA's DCGM exporter as the GPU collector's eyes, instead of NVML (SPEC §4).

Clouds that already run dcgm-exporter on every GPU node point the collector at its
``/metrics``. One scrape per sample gives, per GPU (labels ``gpu`` = index, ``UUID``,
``device``, ``modelName``, ``Hostname``) and per MIG instance (the same labels, ``UUID`` being
the parent GPU's, plus ``GPU_I_ID`` and ``GPU_I_PROFILE``):

- ``DCGM_FI_DEV_GPU_UTIL`` (percent; full GPUs), ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (a ratio;
  the utilization of a MIG instance), ``DCGM_FI_DEV_FB_USED`` (MiB),
  ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ since the driver loaded; per GPU, so MIG events
  carry none, as with NVML), ``DCGM_FI_DEV_XID_ERRORS`` (the last XID seen: a new non-zero
  value that is not an application XID makes the window unbillable, as NVML's XID events do);
- with the exporter's Kubernetes mapping on, ``pod``, ``namespace`` and ``container`` labels on
  the device a pod holds: ``DcgmExporter`` is then also an allocation probe (the org from the
  namespace, as for the kubelet source).

The exporter names no MIG UUID, so a MIG instance's device id here is ``MIG-<GPU UUID>/<GPU_I_ID>``
(the form the NVIDIA driver used before R470). Windows, event ids and health rules are the
collector's, whichever reader it uses.
"""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .allocations import AllocationsUnavailable, Claim
from .devices import DeviceInfo, DevicesUnavailable, Reading, short_model
from .kubernetes import NamespaceOrgs
from .nvml import APPLICATION_XIDS

log = logging.getLogger("tessera.collectors.dcgm")

DEFAULT_URL = "http://127.0.0.1:9400/metrics"
MIG_SLICES_PER_GPU = 7
MIB = 1024 * 1024
FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": "util",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gr_active",
    "DCGM_FI_DEV_FB_USED": "fb_used",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "energy",
    "DCGM_FI_DEV_XID_ERRORS": "xid",
    "DCGM_FI_DEV_POWER_USAGE": "power",
}


@dataclass
class _Row:
    """Everything one scrape says about one GPU or MIG instance."""

    device: DeviceInfo
    values: dict[str, float] = field(default_factory=dict)
    holders: set[tuple[str, str, str]] = field(default_factory=set)  # (namespace, pod, container)


def parse_scrape(text: str) -> tuple[dict[str, _Row], dict[str, dict[str, float]]]:
    """(billable devices by id, GPU-level values of GPUs in MIG mode by GPU UUID).

    Raises ValueError when the text is not Prometheus exposition text."""
    rows: dict[str, _Row] = {}
    parents: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # The parser names a counter's samples NAME_total, whatever the exporter wrote.
            kind = FIELDS.get(sample.name) or FIELDS.get(sample.name.removesuffix("_total"))
            labels = sample.labels
            gpu_uuid = labels.get("UUID") or labels.get("uuid")
            if kind is None or not gpu_uuid:
                continue
            name = labels.get("modelName", "")
            index = int(labels["gpu"]) if str(labels.get("gpu", "")).isdigit() else None
            instance = labels.get("GPU_I_ID", "")
            profile = labels.get("GPU_I_PROFILE", "")
            if instance != "" and profile:
                slices = re.match(r"(\d+)g\.", profile)
                device = DeviceInfo(
                    uuid=f"MIG-{gpu_uuid}/{instance}",
                    gpu_uuid=gpu_uuid,
                    gpu_model=short_model(name),
                    name=name,
                    mig_profile=profile,
                    mig_slices=int(slices.group(1)) if slices else 1,
                    gpu_slices=MIG_SLICES_PER_GPU,
                    gpu_instance_id=int(instance) if instance.isdigit() else None,
                    index=index,
                )
            else:
                device = DeviceInfo(
                    uuid=gpu_uuid,
                    gpu_uuid=gpu_uuid,
                    gpu_model=short_model(name),
                    name=name,
                    index=index,
                )
            row = rows.setdefault(device.uuid, _Row(device))
            row.values[kind] = float(sample.value)
            if labels.get("pod") and labels.get("namespace"):
                row.holders.add((labels["namespace"], labels["pod"], labels.get("container", "")))
    for uuid in [u for u, r in rows.items() if not r.device.is_mig]:
        if any(r.device.is_mig and r.device.gpu_uuid == uuid for r in rows.values()):
            parents[uuid] = rows.pop(uuid).values  # a GPU in MIG mode bills through its instances
    return rows, parents


class DcgmExporter:
    """A ``DeviceReader`` over dcgm-exporter's metrics, and (with ``orgs``) an allocation probe."""

    name = "dcgm"

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        orgs: NamespaceOrgs | None = None,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.orgs = orgs
        self.client = client or httpx.Client(timeout=timeout)
        self.devices: dict[str, DeviceInfo] = {}
        self._scraped: tuple[float, dict[str, _Row], dict[str, dict[str, float]]] | None = None
        self._xids: dict[str, int] = {}

    def scrape(
        self, now: float | None = None
    ) -> tuple[dict[str, _Row], dict[str, dict[str, float]]]:
        """One scrape per ``now`` (the reader and the probe of one sample share it)."""
        if now is not None and self._scraped is not None and self._scraped[0] == now:
            return self._scraped[1], self._scraped[2]
        try:
            response = self.client.get(self.url)
            response.raise_for_status()
            rows, parents = parse_scrape(response.text)
        except (httpx.HTTPError, ValueError) as exc:
            raise DevicesUnavailable(
                f"DCGM exporter {self.url}: {type(exc).__name__}: {exc}"
            ) from exc
        if now is not None:
            self._scraped = (now, rows, parents)
        return rows, parents

    # DeviceReader.
    def open(self) -> list[DeviceInfo]:
        rows, parents = self.scrape()
        if not rows:
            raise DevicesUnavailable(f"DCGM exporter {self.url} reports no GPU")
        self.devices = {uuid: row.device for uuid, row in rows.items()}
        for uuid, row in rows.items():  # XIDs from before we started are a baseline, not news
            self._xids[uuid] = int(row.values.get("xid", 0))
        for uuid, values in parents.items():
            self._xids[uuid] = int(values.get("xid", 0))
        return list(self.devices.values())

    def close(self) -> None:
        self._scraped = None

    def _new_xid(self, key: str, values: Mapping[str, float]) -> int | None:
        if "xid" not in values:
            return None
        value = int(values["xid"])
        previous = self._xids.get(key)
        self._xids[key] = value
        if value and value != previous and value not in APPLICATION_XIDS:
            return value
        if value and value != previous:
            log.info("XID %d on %s (caused by an application, not a GPU fault)", value, key)
        return None

    def read_all(self, known: Mapping[str, DeviceInfo], now: float) -> dict[str, Reading]:
        rows, parents = self.scrape(now)
        self.devices = {uuid: row.device for uuid, row in rows.items()}
        gpu_xids = {uuid: self._new_xid(uuid, values) for uuid, values in parents.items()}
        readings: dict[str, Reading] = {}
        for uuid, device in known.items():
            row = rows.get(uuid)
            if row is None:
                readings[uuid] = Reading(uuid, problems=["device_missing"])
                continue
            values = row.values
            reading = Reading(uuid)
            if device.is_mig:
                if "gr_active" in values:
                    reading.utilization = round(values["gr_active"] * 100, 2)
            else:
                if "util" in values:
                    reading.utilization = values["util"]
                if "energy" in values:
                    reading.energy_mj = int(values["energy"])
                if "power" in values:
                    reading.power_mw = int(values["power"] * 1000)
            if "fb_used" in values:
                reading.memory_used = int(values["fb_used"] * MIB)
            for xid in (self._new_xid(uuid, values), gpu_xids.get(device.gpu_uuid)):
                if xid:
                    reading.problems.append(f"xid_{xid}")
            readings[uuid] = reading
        return readings

    # Probe.
    def claims(self, devices: Mapping[str, DeviceInfo], now: float) -> list[Claim]:
        if self.orgs is None:
            raise AllocationsUnavailable("DCGM as allocation source needs namespace → org")
        try:
            rows, _ = self.scrape(now)
        except DevicesUnavailable as exc:
            raise AllocationsUnavailable(str(exc)) from exc
        claims = []
        for uuid, row in sorted(rows.items()):
            for namespace, pod, container in sorted(row.holders):
                org, why = self.orgs.org_of(namespace)
                claims.append(Claim(uuid, org, f"{namespace}/{pod}/{container}", why))
        return claims
