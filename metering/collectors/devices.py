"""What the GPU collector knows of a device, whichever reader saw it (NVML or DCGM exporter)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

SHORT_MODELS = (
    "GB200",
    "B200",
    "B100",
    "H200",
    "H100",
    "H800",
    "A100",
    "A800",
    "L40S",
    "L40",
    "L4",
)


class DevicesUnavailable(Exception):
    """The devices cannot be read at all (driver not loaded, exporter down): no sample."""


def short_model(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' → 'H100'; unknown names keep their first word after 'NVIDIA'."""
    words = name.replace("-", " ").split()
    for known in SHORT_MODELS:
        if known in words:
            return known
    rest = [w for w in words if w.upper() != "NVIDIA"]
    return rest[0] if rest else name


@dataclass(frozen=True)
class DeviceInfo:
    """What does not change while the process runs."""

    uuid: str
    gpu_uuid: str  # the physical GPU (itself, or the parent of a MIG instance)
    gpu_model: str
    name: str
    mig_profile: str | None = None
    mig_slices: int = 1
    gpu_slices: int = 1
    gpu_instance_id: int | None = None
    index: int | None = None  # the physical GPU's index on the node (NVML order, Slurm's IDX)

    @property
    def fraction(self) -> Fraction:
        """The share of the physical GPU this device bills: 1, or slices/7 for MIG."""
        return Fraction(self.mig_slices, self.gpu_slices)

    @property
    def is_mig(self) -> bool:
        return self.mig_profile is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "gpu_uuid": self.gpu_uuid,
            "gpu_model": self.gpu_model,
            "name": self.name,
            "mig_profile": self.mig_profile,
            "mig_slices": self.mig_slices,
            "gpu_slices": self.gpu_slices,
            "gpu_instance_id": self.gpu_instance_id,
            "index": self.index,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "DeviceInfo":
        return cls(**raw)


@dataclass
class Reading:
    """One sample of one device. None: the reader does not measure it there (or could not say)."""

    uuid: str
    utilization: float | None = None  # percent
    memory_used: int | None = None  # bytes
    power_mw: int | None = None  # milliwatts
    energy_mj: int | None = None  # millijoules since the driver loaded
    processes: int | None = None
    problems: list[str] = field(default_factory=list)  # why it is not healthy; empty: healthy


class DeviceReader(Protocol):
    """NVML (``nvml.Nvml``) or a DCGM exporter's metrics (``dcgm.DcgmExporter``)."""

    devices: dict[str, DeviceInfo]  # present now, by uuid

    def open(self) -> list[DeviceInfo]:
        """Enumerate every GPU and MIG instance. Raises DevicesUnavailable."""
        ...

    def close(self) -> None: ...

    def read_all(self, known: Mapping[str, DeviceInfo], now: float) -> dict[str, Reading]:
        """One reading per known device (``device_missing`` for one that is gone), health
        problems included. Raises DevicesUnavailable when nothing can be read."""
        ...
