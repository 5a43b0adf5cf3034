"""The one small adapter between the GPU collector and NVML.

It takes the NVML module as a dependency: the real ``pynvml`` (nvidia-ml-py) in production,
``simnvml.SimulatedNVML`` in tests and the demo. It only calls functions that ``pynvml``
exports, with the same arguments, and understands ``pynvml``'s own error classes.

Billable devices are full GPUs without MIG and the MIG instances of GPUs in MIG mode (a GPU in
MIG mode is not itself allocatable; its instances are).
"""

import logging
import math
from collections.abc import Mapping
from typing import Any

import pynvml

from .devices import DeviceInfo, DevicesUnavailable, Reading, short_model

log = logging.getLogger("tessera.collectors.nvml")

# XIDs that applications cause (illegal address, page faults, app-requested resets, ...): they
# say nothing about the GPU's health. The same list NVIDIA's Kubernetes device plugin skips.
APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68, 109})
ALL_INSTANCES = 0xFFFFFFFF


class NvmlUnavailable(DevicesUnavailable):
    """NVML cannot be used at all (driver not loaded, library missing)."""


class Nvml:
    def __init__(self, module: Any = pynvml) -> None:
        self.nv = module
        self.handles: dict[str, Any] = {}
        self.devices: dict[str, DeviceInfo] = {}
        self._events: Any = None
        self._open = False

    def open(self) -> list[DeviceInfo]:
        """Initialise NVML and enumerate every GPU and MIG instance."""
        try:
            self.nv.nvmlInit()
        except pynvml.NVMLError as exc:
            raise NvmlUnavailable(str(exc)) from exc
        self._open = True
        self.handles.clear()
        self.devices.clear()
        for index in range(self.nv.nvmlDeviceGetCount()):
            try:
                self._discover(index, self.nv.nvmlDeviceGetHandleByIndex(index))
            except pynvml.NVMLError as exc:
                log.error("GPU %d cannot be enumerated: %s", index, exc)
        self._register_xid_events()
        return list(self.devices.values())

    def close(self) -> None:
        if not self._open:
            return
        try:
            if self._events is not None:
                self.nv.nvmlEventSetFree(self._events)
            self.nv.nvmlShutdown()
        except pynvml.NVMLError as exc:
            log.warning("nvmlShutdown: %s", exc)
        self._events = None
        self._open = False

    def _discover(self, index: int, handle: Any) -> None:
        uuid = _text(self.nv.nvmlDeviceGetUUID(handle))
        name = _text(self.nv.nvmlDeviceGetName(handle))
        model = short_model(name)
        try:
            current, _pending = self.nv.nvmlDeviceGetMigMode(handle)
        except pynvml.NVMLError_NotSupported:
            current = 0
        if current != pynvml.NVML_DEVICE_MIG_ENABLE:
            self.handles[uuid] = handle
            self.devices[uuid] = DeviceInfo(
                uuid=uuid, gpu_uuid=uuid, gpu_model=model, name=name, index=index
            )
            return
        self.handles[f"parent:{uuid}"] = handle
        slots = self.nv.nvmlDeviceGetMaxMigDeviceCount(handle)
        for slot in range(slots):
            try:
                mig = self.nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except pynvml.NVMLError_NotFound:
                continue  # an unpopulated slot
            mig_uuid = _text(self.nv.nvmlDeviceGetUUID(mig))
            attributes = self.nv.nvmlDeviceGetAttributes(mig)
            slices = int(attributes.gpuInstanceSliceCount)
            memory_gb = math.ceil(int(attributes.memorySizeMB) / 1024)
            self.handles[mig_uuid] = mig
            self.devices[mig_uuid] = DeviceInfo(
                uuid=mig_uuid,
                gpu_uuid=uuid,
                gpu_model=model,
                name=name,
                mig_profile=f"{slices}g.{memory_gb}gb",
                mig_slices=slices,
                gpu_slices=slots,
                gpu_instance_id=int(self.nv.nvmlDeviceGetGpuInstanceId(mig)),
                index=index,
            )

    def _register_xid_events(self) -> None:
        try:
            self._events = self.nv.nvmlEventSetCreate()
            for key, handle in self.handles.items():
                device = self.devices.get(key)
                if key.startswith("parent:") or (device is not None and not device.is_mig):
                    self.nv.nvmlDeviceRegisterEvents(
                        handle, pynvml.nvmlEventTypeXidCriticalError, self._events
                    )
        except pynvml.NVMLError as exc:
            log.warning("XID events unavailable (%s); health relies on the other checks", exc)
            self._events = None

    def xid_errors(self) -> dict[str, list[int]]:
        """XIDs since the last call, per device uuid (a GPU-wide XID hits all its instances)."""
        found: dict[str, list[int]] = {}
        if self._events is None:
            return found
        for _ in range(1000):
            try:
                data = self.nv.nvmlEventSetWait_v2(self._events, 0)
            except pynvml.NVMLError_Timeout:
                break
            except pynvml.NVMLError as exc:
                log.warning("reading XID events: %s", exc)
                break
            xid = int(data.eventData)
            if xid in APPLICATION_XIDS:
                log.info("XID %d (caused by an application, not a GPU fault)", xid)
                continue
            try:
                gpu_uuid = _text(self.nv.nvmlDeviceGetUUID(data.device))
            except pynvml.NVMLError:
                continue
            instance = int(getattr(data, "gpuInstanceId", ALL_INSTANCES))
            for device in self.devices.values():
                if device.gpu_uuid != gpu_uuid:
                    continue
                if instance == ALL_INSTANCES or device.gpu_instance_id in (None, instance):
                    found.setdefault(device.uuid, []).append(xid)
        return found

    def read_all(self, known: Mapping[str, DeviceInfo], now: float) -> dict[str, Reading]:
        """Every known device: its reading, or ``device_missing``; XIDs since the last call."""
        readings: dict[str, Reading] = {}
        xids = self.xid_errors()
        for uuid, device in known.items():
            reading = (
                self.read(device)
                if uuid in self.devices
                else Reading(uuid, problems=["device_missing"])
            )
            reading.problems += [f"xid_{code}" for code in xids.get(uuid, [])]
            readings[uuid] = reading
        return readings

    def read(self, device: DeviceInfo) -> Reading:
        reading = Reading(uuid=device.uuid)
        handle = self.handles[device.uuid]
        parent = self.handles.get(f"parent:{device.gpu_uuid}", handle)
        try:
            if not device.is_mig:
                reading.utilization = self._optional(
                    lambda: int(self.nv.nvmlDeviceGetUtilizationRates(handle).gpu)
                )
                reading.power_mw = self._optional(
                    lambda: int(self.nv.nvmlDeviceGetPowerUsage(handle))
                )
                reading.energy_mj = self._optional(
                    lambda: int(self.nv.nvmlDeviceGetTotalEnergyConsumption(handle))
                )
            reading.memory_used = self._optional(
                lambda: int(self.nv.nvmlDeviceGetMemoryInfo(handle).used)
            )
            reading.processes = self._optional(
                lambda: len(self.nv.nvmlDeviceGetComputeRunningProcesses(handle))
            )
            pending = self._optional(
                lambda: int(self.nv.nvmlDeviceGetRetiredPagesPendingStatus(parent))
            )
            if pending == pynvml.NVML_FEATURE_ENABLED:
                reading.problems.append("retired_pages_pending")
        except pynvml.NVMLError_GpuIsLost:
            reading.problems.append("gpu_lost")
        except pynvml.NVMLError_ResetRequired:
            reading.problems.append("reset_required")
        return reading

    @staticmethod
    def _optional(call: Any) -> Any:
        """A value NVML may not support here (MIG, older GPUs): None instead of an error."""
        try:
            return call()
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_NoPermission):
            return None
        except (pynvml.NVMLError_GpuIsLost, pynvml.NVMLError_ResetRequired):
            raise
        except pynvml.NVMLError as exc:
            log.warning("NVML: %s", exc)
            return None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
