"""A simulated NVML: the ``pynvml`` functions the collector calls, over a fleet from YAML.

It raises ``pynvml``'s own error classes where the real library does (``NVMLError_NotSupported``
for utilization, power and energy on a MIG instance; ``NVMLError_GpuIsLost`` once a GPU fell off
the bus; ``NVMLError_DriverNotLoaded`` while the driver is unloaded), reads time from a clock it
is given (so a demo can run a month in seconds), and takes faults: lose a GPU, raise an XID,
reset the energy counter, mark retired pages pending, unload the driver. Faults can also be
scheduled in the fleet file. Readings are deterministic functions of (GPU, time).

Fleet file::

    node: gpu-node-1
    region: eu-north
    gpus:
      - {model: H100-SXM}
      - {model: A100-40GB, mig: [3g.20gb, 3g.20gb, 1g.5gb]}
    faults:
      - {at: 2026-10-03T10:00:00Z, gpu: 0, kind: xid, xid: 79}
"""

import hashlib
import threading
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml
from pynvml import (  # re-exported: the collector may read them off the module it is given
    NVML_DEVICE_MIG_DISABLE,
    NVML_DEVICE_MIG_ENABLE,
    NVML_FEATURE_DISABLED,
    NVML_FEATURE_ENABLED,
    NVMLError,
    NVMLError_DriverNotLoaded,
    NVMLError_GpuIsLost,
    NVMLError_InvalidArgument,
    NVMLError_NotFound,
    NVMLError_NotSupported,
    NVMLError_Timeout,
    NVMLError_Uninitialized,
    nvmlEventTypeXidCriticalError,
)

from .common import load_document, parse_time

__all__ = [
    "NVML_DEVICE_MIG_DISABLE",
    "NVML_DEVICE_MIG_ENABLE",
    "NVML_FEATURE_DISABLED",
    "NVML_FEATURE_ENABLED",
    "NVMLError",
    "NVMLError_DriverNotLoaded",
    "NVMLError_GpuIsLost",
    "NVMLError_NotFound",
    "NVMLError_NotSupported",
    "NVMLError_Timeout",
    "SimulatedNVML",
    "nvmlEventTypeXidCriticalError",
]

MIB = 1024 * 1024


@dataclass(frozen=True)
class Model:
    name: str  # what nvmlDeviceGetName returns
    memory_mib: int
    idle_w: int
    max_w: int
    mig: bool = False


MODELS = {
    "H100-SXM": Model("NVIDIA H100 80GB HBM3", 81559, 70, 700, mig=True),
    "H200": Model("NVIDIA H200", 143771, 75, 700, mig=True),
    "B200": Model("NVIDIA B200", 183359, 120, 1000, mig=True),
    "A100-40GB": Model("NVIDIA A100-SXM4-40GB", 40960, 50, 400, mig=True),
    "A100-80GB": Model("NVIDIA A100-SXM4-80GB", 81920, 50, 400, mig=True),
}

# MIG profiles per GPU memory size: compute slices and memory in MB (as NVML reports them).
MIG_PROFILES = {
    "A100-40GB": {
        "1g.5gb": (1, 4864),
        "2g.10gb": (2, 9984),
        "3g.20gb": (3, 19968),
        "4g.20gb": (4, 19968),
        "7g.40gb": (7, 40192),
    },
    "A100-80GB": {
        "1g.10gb": (1, 9728),
        "2g.20gb": (2, 19968),
        "3g.40gb": (3, 40192),
        "4g.40gb": (4, 40192),
        "7g.80gb": (7, 80896),
    },
    "H100-SXM": {
        "1g.10gb": (1, 9984),
        "2g.20gb": (2, 20096),
        "3g.40gb": (3, 40320),
        "4g.40gb": (4, 40320),
        "7g.80gb": (7, 80896),
    },
}
MIG_SLOTS = 7


@dataclass
class _Instance:
    index: int
    uuid: str
    profile: str
    slices: int
    memory_mb: int
    gpu_instance_id: int


@dataclass
class _Gpu:
    index: int
    key: str
    model: Model
    uuid: str
    instances: list[_Instance] = field(default_factory=list)
    lost: bool = False
    retired_pending: bool = False
    energy_mj: float = 0.0
    energy_at: float | None = None

    @property
    def mig(self) -> bool:
        return bool(self.instances)


@dataclass(frozen=True)
class _Handle:
    gpu: int
    instance: int | None = None


def _uuid(prefix: str, *parts: object) -> str:
    return f"{prefix}-{uuidlib.uuid5(uuidlib.NAMESPACE_URL, '/'.join(map(str, parts)))}"


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from its parts."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SimulatedNVML:
    """Use an instance where the collector expects the ``pynvml`` module."""

    def __init__(
        self,
        fleet: dict[str, Any],
        clock: Callable[[], float],
        *,
        node: str | None = None,
    ) -> None:
        self.clock = clock
        self.node = node or fleet.get("node", "sim-node")
        self.region = fleet.get("region")
        self.gpus: list[_Gpu] = []
        for index, spec in enumerate(fleet.get("gpus") or []):
            self.gpus.append(self._gpu(index, spec))
        self.driver_loaded = True
        self.initialized = 0
        self._xids: list[tuple[int, int, int]] = []  # (gpu index, xid, gpu instance id)
        self._event_sets: list[SimpleNamespace] = []
        self._lock = threading.RLock()
        self._schedule = sorted(
            ((parse_time(f["at"]), i, f) for i, f in enumerate(fleet.get("faults") or [])),
            key=lambda item: (item[0], item[1]),
        )

    @classmethod
    def from_file(
        cls, path: str, clock: Callable[[], float], *, node: str | None = None
    ) -> "SimulatedNVML":
        return cls(load_document(path) or {}, clock, node=node)

    def _gpu(self, index: int, spec: dict[str, Any]) -> _Gpu:
        key = spec.get("model", "H100-SXM")
        if key not in MODELS:
            raise ValueError(f"gpus[{index}].model: unknown {key!r}; known: {', '.join(MODELS)}")
        uuid = spec.get("uuid") or _uuid("GPU", self.node, index)
        gpu = _Gpu(index=index, key=key, model=MODELS[key], uuid=uuid)
        profiles = MIG_PROFILES.get(key, {})
        used = 0
        for i, entry in enumerate(spec.get("mig") or []):
            # "3g.20gb", or {profile: 3g.20gb, uuid: MIG-...} to pin the instance's UUID.
            profile = entry["profile"] if isinstance(entry, dict) else entry
            mig_uuid = entry.get("uuid") if isinstance(entry, dict) else None
            if profile not in profiles:
                known = ", ".join(profiles) or "none"
                raise ValueError(
                    f"gpus[{index}].mig[{i}]: {profile!r} is not a {key} profile ({known})"
                )
            slices, memory_mb = profiles[profile]
            used += slices
            gpu.instances.append(
                _Instance(i, mig_uuid or _uuid("MIG", uuid, i), profile, slices, memory_mb, i + 1)
            )
        if used > MIG_SLOTS:
            raise ValueError(f"gpus[{index}].mig uses {used} slices; a GPU has {MIG_SLOTS}")
        gpu.energy_mj = _unit(uuid, "energy") * 1e9  # the counter counts since the driver loaded
        return gpu

    # Fault injection.
    def lose_gpu(self, gpu: int | str) -> None:
        self._find(gpu).lost = True

    def recover_gpu(self, gpu: int | str) -> None:
        found = self._find(gpu)
        found.lost = False
        found.energy_at = None

    def inject_xid(self, gpu: int | str, xid: int, gpu_instance_id: int = 0xFFFFFFFF) -> None:
        with self._lock:
            self._xids.append((self._find(gpu).index, xid, gpu_instance_id))

    def reset_energy(self, gpu: int | str) -> None:
        """What a driver reload does to the counter: it starts again from zero."""
        found = self._find(gpu)
        self._energy(found)
        found.energy_mj = 0.0

    def set_retired_pages_pending(self, gpu: int | str, pending: bool = True) -> None:
        self._find(gpu).retired_pending = pending

    def unload_driver(self) -> None:
        self.driver_loaded = False

    def load_driver(self) -> None:
        self.driver_loaded = True

    def _find(self, gpu: int | str) -> _Gpu:
        for candidate in self.gpus:
            if gpu in (candidate.index, candidate.uuid):
                return candidate
        raise KeyError(gpu)

    def _apply_schedule(self) -> None:
        now = self.clock()
        while self._schedule and self._schedule[0][0] <= now:
            _, _, fault = self._schedule.pop(0)
            kind, gpu = fault["kind"], fault.get("gpu", 0)
            if kind == "lost":
                self.lose_gpu(gpu)
            elif kind == "recover":
                self.recover_gpu(gpu)
            elif kind == "xid":
                self.inject_xid(
                    gpu, int(fault.get("xid", 79)), int(fault.get("instance", 0xFFFFFFFF))
                )
            elif kind == "energy_reset":
                self.reset_energy(gpu)
            elif kind == "retired_pages":
                self.set_retired_pages_pending(gpu, bool(fault.get("pending", True)))
            elif kind == "driver_unloaded":
                self.unload_driver()
            elif kind == "driver_loaded":
                self.load_driver()
            else:
                raise ValueError(f"unknown fault kind {kind!r}")

    # The simulated physics: deterministic per GPU and minute.
    def _utilization(self, gpu: _Gpu, moment: float) -> int:
        return int(20 + 80 * _unit(gpu.uuid, "util", int(moment // 60)))

    def _power_w(self, gpu: _Gpu, moment: float) -> float:
        util = self._utilization(gpu, moment) / 100
        return gpu.model.idle_w + (gpu.model.max_w - gpu.model.idle_w) * util

    def _energy(self, gpu: _Gpu) -> float:
        now = self.clock()
        if gpu.energy_at is not None and now > gpu.energy_at:
            # Integrate power minute by minute (power changes once a minute).
            t = gpu.energy_at
            while t < now:
                step = min(now, (t // 60 + 1) * 60) - t
                gpu.energy_mj += self._power_w(gpu, t) * step * 1000
                t += step
        gpu.energy_at = now
        return gpu.energy_mj

    # pynvml's API.
    def _check(self) -> None:
        if not self.driver_loaded:
            raise NVMLError_DriverNotLoaded(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
        if not self.initialized:
            raise NVMLError_Uninitialized(pynvml.NVML_ERROR_UNINITIALIZED)
        self._apply_schedule()

    def _resolve(self, handle: _Handle) -> tuple[_Gpu, _Instance | None]:
        self._check()
        if not isinstance(handle, _Handle) or not 0 <= handle.gpu < len(self.gpus):
            raise NVMLError_InvalidArgument(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.gpu]
        if gpu.lost:
            raise NVMLError_GpuIsLost(pynvml.NVML_ERROR_GPU_IS_LOST)
        instance = None if handle.instance is None else gpu.instances[handle.instance]
        return gpu, instance

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if not self.driver_loaded:
            raise NVMLError_DriverNotLoaded(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
        self.initialized += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        if self.initialized:
            self.initialized -= 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._check()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:  # noqa: N802
        self._check()
        if not 0 <= index < len(self.gpus):
            raise NVMLError_InvalidArgument(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:  # noqa: N802
        gpu, instance = self._resolve(handle)
        return instance.uuid if instance else gpu.uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:  # noqa: N802
        gpu, instance = self._resolve(handle)
        return f"{gpu.model.name} MIG {instance.profile}" if instance else gpu.model.name

    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:  # noqa: N802
        gpu, instance = self._resolve(handle)
        if instance is not None or not gpu.model.mig:
            raise NVMLError_NotSupported(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = NVML_DEVICE_MIG_ENABLE if gpu.mig else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:  # noqa: N802
        gpu, _ = self._resolve(handle)
        return MIG_SLOTS if gpu.mig else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _Handle:  # noqa: N802
        gpu, instance = self._resolve(handle)
        if instance is not None or not gpu.mig:
            raise NVMLError_InvalidArgument(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < len(gpu.instances):
            raise NVMLError_NotFound(pynvml.NVML_ERROR_NOT_FOUND)
        return _Handle(gpu.index, index)

    def nvmlDeviceIsMigDeviceHandle(self, handle: _Handle) -> int:  # noqa: N802
        self._resolve(handle)
        return int(handle.instance is not None)

    def nvmlDeviceGetGpuInstanceId(self, handle: _Handle) -> int:  # noqa: N802
        _, instance = self._resolve(handle)
        if instance is None:
            raise NVMLError_InvalidArgument(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return instance.gpu_instance_id

    def nvmlDeviceGetAttributes(self, handle: _Handle) -> SimpleNamespace:  # noqa: N802
        gpu, instance = self._resolve(handle)
        slices = instance.slices if instance else MIG_SLOTS
        memory = instance.memory_mb if instance else gpu.model.memory_mib
        return SimpleNamespace(
            multiprocessorCount=slices * 14,
            gpuInstanceSliceCount=slices,
            computeInstanceSliceCount=slices,
            memorySizeMB=memory,
        )

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> SimpleNamespace:  # noqa: N802
        gpu, instance = self._resolve(handle)
        if instance is not None:
            raise NVMLError_NotSupported(pynvml.NVML_ERROR_NOT_SUPPORTED)
        util = self._utilization(gpu, self.clock())
        return SimpleNamespace(gpu=util, memory=util // 2)

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: Any = None) -> SimpleNamespace:  # noqa: N802
        gpu, instance = self._resolve(handle)
        total = (instance.memory_mb if instance else gpu.model.memory_mib) * MIB
        share = _unit(instance.uuid if instance else gpu.uuid, "mem", int(self.clock() // 60))
        used = int(total * (0.1 + 0.8 * share))
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:  # noqa: N802
        gpu, instance = self._resolve(handle)
        if instance is not None:
            raise NVMLError_NotSupported(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return int(self._power_w(gpu, self.clock()) * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:  # noqa: N802
        gpu, instance = self._resolve(handle)
        if instance is not None:
            raise NVMLError_NotSupported(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return int(self._energy(gpu))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[SimpleNamespace]:  # noqa: N802
        gpu, instance = self._resolve(handle)
        key = instance.uuid if instance else gpu.uuid
        count = int(_unit(key, "procs", int(self.clock() // 60)) * 3)
        return [
            SimpleNamespace(
                pid=1000 + i, usedGpuMemory=1 << 30, gpuInstanceId=0, computeInstanceId=0
            )
            for i in range(count)
        ]

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: _Handle) -> int:  # noqa: N802
        gpu, _ = self._resolve(handle)
        return NVML_FEATURE_ENABLED if gpu.retired_pending else NVML_FEATURE_DISABLED

    def nvmlEventSetCreate(self) -> SimpleNamespace:  # noqa: N802
        self._check()
        event_set = SimpleNamespace(gpus=set(), cursor=len(self._xids))
        self._event_sets.append(event_set)
        return event_set

    def nvmlDeviceRegisterEvents(self, handle: _Handle, types: int, event_set: Any) -> None:  # noqa: N802
        gpu, instance = self._resolve(handle)
        if instance is not None:
            raise NVMLError_NotSupported(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if types & nvmlEventTypeXidCriticalError:
            event_set.gpus.add(gpu.index)

    def nvmlEventSetWait_v2(self, event_set: Any, timeoutms: int) -> SimpleNamespace:  # noqa: N802
        self._check()
        with self._lock:
            while event_set.cursor < len(self._xids):
                gpu, xid, instance = self._xids[event_set.cursor]
                event_set.cursor += 1
                if gpu in event_set.gpus:
                    return SimpleNamespace(
                        device=_Handle(gpu),
                        eventType=nvmlEventTypeXidCriticalError,
                        eventData=xid,
                        gpuInstanceId=instance,
                        computeInstanceId=0xFFFFFFFF,
                    )
        raise NVMLError_Timeout(pynvml.NVML_ERROR_TIMEOUT)

    def nvmlEventSetWait(self, event_set: Any, timeoutms: int) -> SimpleNamespace:  # noqa: N802
        return self.nvmlEventSetWait_v2(event_set, timeoutms)

    def nvmlEventSetFree(self, event_set: Any) -> None:  # noqa: N802
        if event_set in self._event_sets:
            self._event_sets.remove(event_set)
