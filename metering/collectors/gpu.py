"""GPU collector: device samples → windows → one ``gpu.usage`` event per (org, device, window).

Run ``python -m metering.collectors.gpu --help``. How it works (docs/collectors.md has more):

- Every ``sample_seconds`` (paced by the monotonic clock) it reads every GPU and MIG instance,
  through NVML or a DCGM exporter (``devices.DeviceReader``).
  Each sample lands in the window of its wall-clock time; windows (default 60 s) start on
  multiples of their length, so a window never straddles a UTC hour.
- The open window's running totals are saved with every sample; a window closes when the clock
  passes its end. Closing writes a summary; attributing it to orgs (from Tessera's allocations
  API, a file, the kubelet, Slurm or the DCGM exporter: ``allocations``) turns it into events in
  the spool, in the same transaction that deletes the summary.
- Billed GPU-seconds = seconds the org holds the device in the window, never more than the
  window in all (``allocations.divide``: overlapping claims are refused and reported), × the
  device's share of its GPU (1, or slices/7 for MIG), rounded half-even to 6 places. A device
  unhealthy at any sample of the window (lost, XID, retired pages pending, reset required)
  bills 0 with the reason.
- A window the collector did not observe is not invented: the gap is logged, counted and shown
  on /healthz.
"""

import argparse
import logging
import math
import signal
import socket
import sys
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import __version__
from .allocations import (
    Allocation,
    AllocationSource,
    AllocationsUnavailable,
    ApiAllocations,
    Conflict,
    FileAllocations,
    MappingFile,
    ObservedAllocations,
    divide,
)
from .common import (
    COMMON_SETTINGS,
    Clock,
    ConfigError,
    Setting,
    SimulatedClock,
    SystemClock,
    build_parser,
    decimal_text,
    iso,
    load_document,
    parse_time,
    resolve_settings,
    setup_logging,
)
from .dcgm import DEFAULT_URL as DCGM_URL
from .dcgm import DcgmExporter
from .devices import DeviceInfo, DeviceReader, DevicesUnavailable, Reading
from .kubernetes import (
    DEFAULT_ORG_LABEL,
    DEFAULT_REGION_LABEL,
    DEFAULT_RESOURCES,
    DEFAULT_SOCKET,
    KubeletPodResources,
    NamespaceOrgs,
    kube_api_client,
    node_region,
)
from .nvml import Nvml
from .sender import Sender
from .simnvml import SimulatedNVML
from .slurm import DEFAULT_COMMAND as DEFAULT_SLURM_COMMAND
from .slurm import SlurmJobs
from .spool import Spool, Transaction
from .telemetry import Telemetry

log = logging.getLogger("tessera.collectors.gpu")

MICRO = Decimal("0.000001")
MAX_ATTRIBUTION_SPAN = 86_400  # seconds of windows attributed per allocation request
GAPS_KEPT = 50
CONFLICTS_KEPT = 50


def quantize(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        MICRO, rounding=ROUND_HALF_EVEN
    )


class GpuCollector:
    def __init__(
        self,
        *,
        nvml: DeviceReader,
        allocations: AllocationSource,
        spool: Spool,
        telemetry: Telemetry,
        node: str,
        region: str,
        window_seconds: int = 60,
        sample_seconds: float = 5.0,
        source: str | None = None,
    ) -> None:
        if window_seconds <= 0 or 3600 % window_seconds:
            raise ValueError("window_seconds must divide 3600 (so no window straddles an hour)")
        if not 0 < sample_seconds <= window_seconds:
            raise ValueError("sample_seconds must be positive and at most window_seconds")
        self.nvml = nvml
        self.source_of_allocations = allocations
        self.spool = spool
        self.telemetry = telemetry
        self.node = node
        self.region = region
        self.window = window_seconds
        self.sample_seconds = sample_seconds
        self.gap_after = max(3 * sample_seconds, sample_seconds + 2)
        self.source = source or f"tessera-gpu-collector/{node}"
        self.opened = False
        self.devices: dict[str, DeviceInfo] = {
            uuid: DeviceInfo.from_dict(raw)
            for uuid, raw in (spool.get_state("gpu:devices") or {}).items()
        }

    # Sampling.
    def ensure_open(self) -> bool:
        if self.opened:
            return True
        try:
            found = self.nvml.open()
        except DevicesUnavailable as exc:
            self.telemetry.errors.labels("nvml_unavailable").inc()
            self.telemetry.problem("nvml", f"devices unavailable: {exc}")
            log.error("devices unavailable (%s); no samples until they are back", exc)
            return False
        self.telemetry.problem("nvml", None)
        self.opened = True
        for device in found:
            self.devices[device.uuid] = device
        self.spool.set_state("gpu:devices", {u: d.as_dict() for u, d in self.devices.items()})
        self.telemetry.devices.set(len(self.devices))
        log.info(
            "NVML: %d devices: %s",
            len(found),
            ", ".join(
                f"{d.gpu_model}{' ' + d.mig_profile if d.mig_profile else ''}" for d in found
            ),
        )
        return True

    def observe(self, now: float) -> bool:
        """Ask a source that only knows the present who holds what (SPEC §4: Kubernetes,
        Slurm, DCGM); a no-op for the allocation file and API. False when it cannot answer."""
        try:
            self.source_of_allocations.observe(now, self.devices)
        except AllocationsUnavailable as exc:
            self.telemetry.errors.labels("allocation_source").inc()
            self.telemetry.problem("allocation_source", f"allocation source: {exc}")
            log.warning("allocation source unavailable at %s: %s", iso(now), exc)
            return False
        self.telemetry.problem("allocation_source", None)
        unattributed: dict[str, str] = getattr(self.source_of_allocations, "unattributed", {})
        self.telemetry.unattributed.set(len(unattributed))
        self.telemetry.problem(
            "unattributed",
            "devices held by no known org: "
            + "; ".join(f"{holder}: {why}" for holder, why in sorted(unattributed.items()))
            if unattributed
            else None,
        )
        return True

    def tick(self, now: float) -> bool:
        """Observe the allocation source, close what has ended by ``now``, then take one
        sample at ``now``. False when the devices could not be read."""
        opened = self.ensure_open()  # first: a source naming GPUs by index needs the devices
        self.observe(now)
        self.close_ended(now)
        if not opened:
            return False
        try:
            readings = self.nvml.read_all(self.devices, now)
        except DevicesUnavailable as exc:
            self.opened = False
            self.telemetry.problem("nvml", str(exc))
            return False
        except Exception as exc:  # an NVML failure must not kill the loop; the gap shows it
            if type(exc).__module__ == "pynvml" or "NVMLError" in type(exc).__name__:
                log.error("NVML failed (%s); re-initialising", exc)
                self.nvml.close()
                self.opened = False
                self.telemetry.errors.labels("nvml").inc()
                return False
            raise
        start = int(now // self.window) * self.window
        with self.spool.transaction() as tx:
            cursor = tx.get_state("gpu:cursor") or {}
            window = tx.get_state("gpu:open")
            if window is not None and start < window["start"]:
                log.warning("wall clock went back to %s; sample ignored", iso(now))
                return False
            last = cursor.get("last_sample")
            gap = last is not None and now - last > self.gap_after
            if last is not None and gap:
                self._record_gap(tx, last, now)
            if window is None or window["start"] != start:
                window = {"start": start, "devices": {}}
            energy: dict[str, int] = cursor.get("energy") or {}
            for uuid, reading in readings.items():
                acc = window["devices"].setdefault(uuid, _new_acc())
                _add(acc, reading, now)
                if reading.energy_mj is not None:
                    previous = energy.get(uuid)
                    if previous is not None and not gap:
                        if reading.energy_mj >= previous:
                            acc["energy_mj"] += reading.energy_mj - previous
                        else:
                            # The counter restarted (driver reload): what it holds now was
                            # spent since the reset; what was spent just before it is unknown.
                            acc["energy_mj"] += reading.energy_mj
                            acc["energy_resets"] += 1
                            self.telemetry.errors.labels("energy_counter_reset").inc()
                            log.warning("energy counter of %s reset at %s", uuid, iso(now))
                    energy[uuid] = reading.energy_mj
                elif reading.problems:
                    energy.pop(uuid, None)
            tx.set_state("gpu:open", window)
            tx.set_state("gpu:cursor", {**cursor, "last_sample": now, "energy": energy})
        self.telemetry.samples.inc()
        self.telemetry.unhealthy.set(sum(1 for r in readings.values() if r.problems))
        self.telemetry.status["last_sample"] = iso(now)
        return True

    def close_ended(self, now: float) -> None:
        """Close the open window if ``now`` is at or past its end."""
        with self.spool.transaction() as tx:
            window = tx.get_state("gpu:open")
            if window is None or window["start"] + self.window > now:
                return
            end = window["start"] + self.window
            summary = {"start": window["start"], "end": end, "devices": window["devices"]}
            tx.set_state(f"gpu:closed:{window['start']:012d}", summary)
            tx.delete_state("gpu:open")
        self.telemetry.windows.inc()
        log.debug("closed window %s", iso(window["start"]))

    def _record_gap(self, tx: Transaction, last: float, now: float) -> None:
        gaps = tx.get_state("gpu:gaps") or []
        gap = {"from": iso(last), "to": iso(now), "seconds": round(now - last, 3)}
        gaps = [*gaps, gap][-GAPS_KEPT:]
        tx.set_state("gpu:gaps", gaps)
        self.telemetry.gaps.inc()
        self.telemetry.gap_seconds.inc(now - last)
        self.telemetry.status["last_gap"] = gap
        log.warning(
            "gap: no samples from %s to %s (%.0f s); those windows are not reported",
            gap["from"],
            gap["to"],
            now - last,
        )

    # Attribution.
    def pending_windows(self) -> int:
        return len(self.spool.state_keys("gpu:closed:"))

    def attribute(self) -> int:
        """Turn closed windows into events; returns how many windows were attributed."""
        keys = self.spool.state_keys("gpu:closed:")
        done = 0
        while keys:
            first = int(keys[0].rsplit(":", 1)[1])
            chunk = [k for k in keys if int(k.rsplit(":", 1)[1]) < first + MAX_ATTRIBUTION_SPAN]
            keys = keys[len(chunk) :]
            last = int(chunk[-1].rsplit(":", 1)[1]) + self.window
            try:
                allocations = self.source_of_allocations.allocations(self.node, first, last)
            except AllocationsUnavailable as exc:
                self.telemetry.problem("allocations", f"allocations unavailable: {exc}")
                self.telemetry.errors.labels("allocations").inc()
                log.warning(
                    "allocations unavailable (%s); %d windows wait", exc, len(chunk) + len(keys)
                )
                return done
            self.telemetry.problem("allocations", None)
            by_device: dict[str, list[Allocation]] = {}
            for allocation in allocations:
                by_device.setdefault(allocation.device_uuid, []).append(allocation)
            conflicts: list[Conflict] = []
            with self.spool.transaction() as tx:
                added = 0
                for key in chunk:
                    summary = tx.get_state(key)
                    if summary is None:
                        continue
                    events, found = self._events(summary, by_device)
                    added += tx.add(events)
                    conflicts += found
                    tx.delete_state(key)
                if conflicts:
                    recent = tx.get_state("gpu:conflicts") or []
                    shown = [_conflict_row(c) for c in conflicts]
                    tx.set_state("gpu:conflicts", [*recent, *shown][-CONFLICTS_KEPT:])
            self._report_conflicts(conflicts)
            self.telemetry.events_spooled.inc(added)
            self.source_of_allocations.forget_before(last)
            done += len(chunk)
        return done

    def _report_conflicts(self, conflicts: list[Conflict]) -> None:
        """Log, count and show on /healthz the overlapping claims just refused; the health
        problem stays until a round of windows comes without one."""
        for conflict in conflicts:
            device = self.devices.get(conflict.device_uuid)
            share = device.fraction if device else Fraction(1)
            self.telemetry.conflicts.inc()
            self.telemetry.conflict_gpu_seconds.inc(float(conflict.seconds * share))
            log.error("allocation conflict: %s", conflict.describe())
        self.telemetry.problem(
            "allocation_conflicts",
            f"{len(conflicts)} overlapping claims refused, latest: {conflicts[-1].describe()}"
            if conflicts
            else None,
        )

    def _events(
        self, summary: dict[str, Any], by_device: dict[str, list[Allocation]]
    ) -> tuple[list[dict[str, Any]], list[Conflict]]:
        start, end = summary["start"], summary["end"]
        events = []
        conflicts: list[Conflict] = []
        for uuid, acc in sorted(summary["devices"].items()):
            device = self.devices.get(uuid)
            if device is None:
                continue
            held, found = divide(by_device.get(uuid, []), start, end)
            conflicts += found
            contested = sum((c.seconds for c in found if c.holder is None), Fraction(0))
            idle = Fraction(end - start) - sum(held.values(), Fraction(0)) - contested
            self.telemetry.idle_gpu_seconds.inc(float(max(idle, Fraction(0)) * device.fraction))
            for org, seconds in sorted(held.items()):
                events.append(self._event(device, acc, org, seconds, start, end))
        return events, conflicts

    def _event(
        self,
        device: DeviceInfo,
        acc: dict[str, Any],
        org: str,
        seconds: Fraction,
        start: int,
        end: int,
    ) -> dict[str, Any]:
        problems = sorted(set(acc["problems"]))
        billed = quantize(seconds * device.fraction)
        if problems:
            self.telemetry.unbillable_gpu_seconds.labels(problems[0]).inc(float(billed))
        util = (
            decimal_text((Decimal(str(acc["util_sum"])) / acc["util_n"]).quantize(Decimal("0.01")))
            if acc["util_n"]
            else None
        )
        data = {
            "gpu_seconds": "0" if problems else decimal_text(billed),
            "allocated_seconds": decimal_text(quantize(seconds)),
            "gpu_model": device.gpu_model,
            "gpu_name": device.name,
            "gpu_uuid": device.uuid,
            "physical_gpu_uuid": device.gpu_uuid,
            "mig_profile": device.mig_profile,
            "mig_fraction": decimal_text(quantize(device.fraction)),
            "node": self.node,
            "region": self.region,
            "window_start": iso(start),
            "window_end": iso(end),
            "samples": acc["n"],
            "utilization_avg": util,
            "energy_joules": (
                None if device.is_mig else decimal_text(Decimal(acc["energy_mj"]) / 1000)
            ),
            "energy_counter_resets": acc["energy_resets"],
            "memory_used_bytes": acc["mem_max"],
            "processes_max": acc["procs_max"],
            "billable": not problems,
            "unbillable_reason": ",".join(problems) if problems else None,
        }
        return {
            "specversion": "1.0",
            "id": f"{self.node}/{device.uuid}/{iso(start)}/{org}",
            "source": self.source,
            "type": "gpu.usage",
            "subject": org,
            "time": iso(start),
            "datacontenttype": "application/json",
            "data": data,
        }

    def health_extra(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "spool_events": self.spool.pending(),
            "rejected_events": self.spool.rejected_count(),
            "windows_waiting_for_allocations": self.pending_windows(),
            "recent_gaps": (self.spool.get_state("gpu:gaps") or [])[-5:],
            "recent_conflicts": (self.spool.get_state("gpu:conflicts") or [])[-5:],
        }


def _conflict_row(conflict: Conflict) -> dict[str, Any]:
    return {
        "device": conflict.device_uuid,
        "from": iso(conflict.start),
        "to": iso(conflict.end),
        "orgs": list(conflict.orgs),
        "billed_to": conflict.holder,
        "claims": list(conflict.claims),
    }


def _new_acc() -> dict[str, Any]:
    return {
        "n": 0,
        "util_sum": 0,
        "util_n": 0,
        "mem_max": None,
        "procs_max": None,
        "energy_mj": 0,
        "energy_resets": 0,
        "problems": [],
        "first": None,
        "last": None,
    }


def _add(acc: dict[str, Any], reading: Reading, now: float) -> None:
    acc["n"] += 1
    if reading.utilization is not None:
        acc["util_sum"] += reading.utilization
        acc["util_n"] += 1
    if reading.memory_used is not None:
        acc["mem_max"] = max(acc["mem_max"] or 0, reading.memory_used)
    if reading.processes is not None:
        acc["procs_max"] = max(acc["procs_max"] or 0, reading.processes)
    acc["problems"] = sorted(set(acc["problems"]) | set(reading.problems))
    acc["first"] = acc["first"] if acc["first"] is not None else now
    acc["last"] = now


# Running it.
class Runner:
    def __init__(
        self,
        collector: GpuCollector,
        sender: Sender | None,
        clock: Clock,
        observe_seconds: float | None = None,
    ) -> None:
        self.collector = collector
        self.sender = sender
        self.clock = clock
        self.observe_seconds = observe_seconds or collector.sample_seconds
        self.stopping = False

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def _deliver(self) -> bool:
        """Attribute what is due and send; False when a send failed."""
        self.collector.attribute()
        if self.sender is None or not self.sender.ready():
            return True
        result = self.sender.flush()
        problem = None
        if self.sender.last_error and self.collector.spool.oldest_age() > 600:
            age = self.collector.spool.oldest_age()
            problem = f"cannot deliver for {age:.0f}s: {self.sender.last_error}"
        self.collector.telemetry.problem("delivery", problem)
        return result.ok

    def once(self) -> bool:
        """One sample and one delivery attempt: the smoke test. False (exit 1) when the
        devices or the allocation source cannot be read, or a send failed."""
        now = self.clock.wall()
        sampled = self.collector.tick(now)
        observed = "allocation_source" not in self.collector.telemetry.problems
        delivered = self._deliver()
        if not sampled:
            log.error("--once: no sample (%s)", self.collector.telemetry.problems.get("nvml"))
        return sampled and observed and delivered

    def forever(self) -> None:
        step = self.collector.sample_seconds
        next_at = self.clock.monotonic()
        while not self.stopping:
            self.collector.tick(self.clock.wall())
            self._deliver()
            next_at += step
            now = self.clock.monotonic()
            if next_at < now:  # fell behind (suspended, slow NVML): skip, the gap is recorded
                next_at = now + step
            observe_at = now + self.observe_seconds
            while not self.stopping and self.clock.monotonic() < next_at:
                if self.clock.monotonic() >= observe_at:  # finer than the samples, if asked
                    self.collector.observe(self.clock.wall())
                    observe_at += self.observe_seconds
                wake = min(next_at, observe_at) - self.clock.monotonic()
                self.clock.sleep(min(0.5, max(0.0, wake)))

    def simulate(self, start: float, end: float, drain_timeout: float) -> bool:
        """Drive a simulated clock over [start, end) without sleeping; resumes if restarted."""
        clock = self.clock
        assert isinstance(clock, SimulatedClock)
        step = self.collector.sample_seconds
        last = (self.collector.spool.get_state("gpu:cursor") or {}).get("last_sample")
        moment = start
        if last is not None and start <= last < end:
            moment = start + (math.floor((last - start) / step) + 1) * step
            log.info("resuming the simulation at %s", iso(moment))
        ticks = 0
        while moment < end and not self.stopping:
            clock.set(moment)
            self.collector.tick(moment)
            ticks += 1
            if self.collector.pending_windows() >= 1000:
                self._deliver()
            moment += step
        if self.stopping:
            return False
        clock.set(end)
        self.collector.observe(end)
        self.collector.close_ended(end)
        self.collector.attribute()
        if self.sender is None:
            return True
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline and not self.stopping:
            self.collector.attribute()
            if (
                self.sender.drain(max(0.0, deadline - time.monotonic()))
                and not self.collector.pending_windows()
            ):
                log.info("simulation done: %d samples, everything delivered", ticks)
                return True
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        log.error("simulation done but %d events are still spooled", self.collector.spool.pending())
        return False


SOURCES = ("api", "file", "kubernetes", "slurm", "dcgm")
SETTINGS: tuple[Setting, ...] = (
    *COMMON_SETTINGS,
    Setting("node", help="this node's name, as the allocation source names it (default: the "
            "host name)"),
    Setting("region", help="region in every event, matching the catalog's products; required "
            "unless the Kubernetes node's region label gives it"),
    Setting("spool", "path", "var/gpu-collector.sqlite3", "spool database path"),
    Setting("window_seconds", "int", 60, "window length; must divide 3600"),
    Setting("sample_seconds", "float", 5.0, "seconds between device samples"),
    Setting("observe_seconds", "float", None, "seconds between polls of a kubernetes, slurm or "
            "dcgm allocation source (default: sample_seconds); attribution is this fine"),
    Setting("source", help="CloudEvents source (default tessera-gpu-collector/NODE)"),
    Setting("once", "bool", False, "take one sample, deliver what is due, exit (1 on failure)"),
    Setting("device_source", default="nvml", help="nvml or dcgm (a DCGM exporter's metrics)"),
    Setting("dcgm_url", default=DCGM_URL, help="the DCGM exporter's metrics URL"),
    Setting("allocation_source", help="api, file, kubernetes, slurm or dcgm (default: file "
            "with --allocations-file, else api)"),
    Setting("allocations_file", "path", help="allocations YAML/JSON a scheduler writes"),
    Setting("kubelet_socket", "path", DEFAULT_SOCKET, "the kubelet pod-resources socket"),
    Setting("gpu_resources", "words", list(DEFAULT_RESOURCES), "resource names that are GPUs "
            "(a trailing '-' matches a prefix)"),
    Setting("org_label", default=DEFAULT_ORG_LABEL, help="namespace label naming the org"),
    Setting("namespace_orgs_file", "path", help="namespace → org mapping (YAML/JSON), for "
            "namespaces without the label and while the Kubernetes API is unreachable"),
    Setting("namespace_cache_seconds", "float", 60.0, "how long a namespace's org is cached"),
    Setting("kube_api_url", help="Kubernetes API URL (default: in-cluster, then ~/.kube/config)"),
    Setting("kube_token_file", "path", help="bearer token file for --kube-api-url"),
    Setting("region_label", default=DEFAULT_REGION_LABEL, help="node label read for the "
            "region when --region is not given (Kubernetes)"),
    Setting("slurm_command", default=DEFAULT_SLURM_COMMAND, help="command printing Slurm's job "
            "JSON (squeue --json or scontrol show job --json)"),
    Setting("slurm_url", help="slurmrestd jobs URL instead of the command, e.g. "
            "http://slurmrestd:6820/slurm/v0.0.41/jobs"),
    Setting("slurm_user", help="X-SLURM-USER-NAME for slurmrestd"),
    Setting("slurm_token", help="X-SLURM-USER-TOKEN for slurmrestd", aliases=("SLURM_JWT",)),
    Setting("slurm_accounts_file", "path", help="Slurm account → org mapping (YAML/JSON)"),
    Setting("simulate", "path", help="use a simulated NVML over this fleet file"),
    Setting("simulate_from", help="with --simulate: run a simulated clock from TIME"),
    Setting("simulate_to", help="...to TIME (exclusive), without sleeping, then exit"),
)  # fmt: skip


def build_collector_parser() -> argparse.ArgumentParser:
    return build_parser(
        "python -m metering.collectors.gpu",
        "Tessera GPU collector: samples every GPU and MIG instance (NVML or a DCGM exporter), "
        "learns who holds each one (Tessera's allocations API, a file, the kubelet, Slurm or "
        "the DCGM exporter's pod labels), closes windows on wall-clock boundaries and reports "
        "one gpu.usage event per (org, device, window) to POST /api/v1/events.",
        SETTINGS,
    )


@dataclass
class Built:
    reader: DeviceReader
    allocations: AllocationSource
    region: str
    node: str
    clock: Clock


def build(cfg: dict[str, Any], spool: Spool) -> Built:
    """Readers and sources from resolved settings. Raises ConfigError."""
    simulated = bool(cfg.get("simulate_from") or cfg.get("simulate_to"))
    if simulated and not (
        cfg.get("simulate") and cfg.get("simulate_from") and cfg.get("simulate_to")
    ):
        raise ConfigError("--simulate-from and --simulate-to need each other and --simulate")
    try:
        clock: Clock = (
            SimulatedClock(parse_time(cfg["simulate_from"])) if simulated else SystemClock()
        )
        fleet: dict[str, Any] = (
            (load_document(cfg["simulate"]) or {}) if cfg.get("simulate") else {}
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"simulation: {exc}") from exc
    node = cfg.get("node") or fleet.get("node") or socket.gethostname()
    kind = cfg.get("allocation_source") or ("file" if cfg.get("allocations_file") else "api")
    if kind not in SOURCES:
        raise ConfigError(f"allocation_source {kind!r}: expected one of {', '.join(SOURCES)}")
    if cfg["device_source"] not in ("nvml", "dcgm"):
        raise ConfigError(f"device_source {cfg['device_source']!r}: expected nvml or dcgm")
    api_client = None
    if kind in ("kubernetes", "dcgm") or cfg.get("kube_api_url"):
        try:
            api_client = kube_api_client(cfg.get("kube_api_url"), cfg.get("kube_token_file"))
        except Exception as exc:  # the client raises its own ConfigException, or OSError
            if kind == "kubernetes" and not cfg.get("namespace_orgs_file"):
                raise ConfigError(f"no Kubernetes API and no namespace_orgs_file: {exc}") from exc
            log.warning("no Kubernetes API (%s): namespaces map through the file only", exc)
    orgs = NamespaceOrgs(
        api_client=api_client,
        label=cfg["org_label"],
        mapping=MappingFile(cfg.get("namespace_orgs_file")),
        ttl=float(cfg["namespace_cache_seconds"]),
    )
    dcgm = (
        DcgmExporter(cfg["dcgm_url"], orgs=orgs) if "dcgm" in (kind, cfg["device_source"]) else None
    )
    reader: DeviceReader
    if cfg.get("simulate"):
        reader = Nvml(SimulatedNVML(fleet, clock.wall, node=node))
    elif cfg["device_source"] == "dcgm" and dcgm is not None:
        reader = dcgm
    else:
        reader = Nvml()
    max_gap = max(3 * float(cfg["sample_seconds"]), float(cfg["sample_seconds"]) + 2)
    allocations: AllocationSource
    if kind == "file":
        if not cfg.get("allocations_file"):
            raise ConfigError("allocation_source file needs allocations_file")
        allocations = FileAllocations(cfg["allocations_file"])
    elif kind == "api":
        allocations = ApiAllocations(cfg["api_url"], cfg["api_key"])
    elif kind == "kubernetes":
        probe = KubeletPodResources(
            socket_path=cfg["kubelet_socket"], orgs=orgs, resources=cfg["gpu_resources"]
        )
        allocations = ObservedAllocations(probe, spool, max_gap=max_gap)
    elif kind == "slurm":
        if not cfg.get("slurm_accounts_file"):
            raise ConfigError("allocation_source slurm needs slurm_accounts_file (account → org)")
        slurm = SlurmJobs(
            node=node,
            accounts=MappingFile(cfg["slurm_accounts_file"]),
            command=cfg["slurm_command"],
            url=cfg.get("slurm_url"),
            user=cfg.get("slurm_user"),
            token=cfg.get("slurm_token"),
        )
        allocations = ObservedAllocations(slurm, spool, max_gap=max_gap)
    else:
        assert dcgm is not None
        allocations = ObservedAllocations(dcgm, spool, max_gap=max_gap)
    region = cfg.get("region") or fleet.get("region")
    if not region and api_client is not None:
        try:
            region = node_region(api_client, node, cfg["region_label"])
        except Exception as exc:  # the Kubernetes client's errors, or a network failure
            log.error("reading node %s's %s label: %s", node, cfg["region_label"], exc)
    if not region:
        raise ConfigError(
            "region is required (it must match the catalog's products): --region, "
            "TESSERA_COLLECTOR_REGION, region: in the config, or on Kubernetes the node label "
            f"{cfg['region_label']}"
        )
    return Built(reader, allocations, str(region), str(node), clock)


def main(argv: list[str] | None = None) -> int:
    args = build_collector_parser().parse_args(argv)
    try:
        cfg = resolve_settings(args, SETTINGS)
    except ConfigError as exc:
        setup_logging("INFO")
        log.error("%s", exc)
        return 2
    setup_logging(cfg["log_level"])
    if not cfg.get("api_key"):
        log.error("no API key: --api-key or TESSERA_COLLECTOR_API_KEY (or TESSERA_COLLECTOR_KEY)")
        return 2
    spool = Spool(Path(cfg["spool"]))
    try:
        built = build(cfg, spool)
    except ConfigError as exc:
        log.error("%s", exc)
        spool.close()
        return 2
    telemetry = Telemetry("gpu")
    try:
        collector = GpuCollector(
            nvml=built.reader,
            allocations=built.allocations,
            spool=spool,
            telemetry=telemetry,
            node=built.node,
            region=built.region,
            window_seconds=int(cfg["window_seconds"]),
            sample_seconds=float(cfg["sample_seconds"]),
            source=cfg.get("source"),
        )
    except ValueError as exc:
        log.error("%s", exc)
        spool.close()
        return 2
    sender = Sender(
        spool=spool,
        api_url=cfg["api_url"],
        api_key=cfg["api_key"],
        telemetry=telemetry,
        batch_size=int(cfg["batch_size"]),
    )
    if cfg.get("health_port") is not None:
        telemetry.serve(int(cfg["health_port"]), extra=collector.health_extra)
    runner = Runner(collector, sender, built.clock, cfg.get("observe_seconds"))
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    log.info(
        "GPU collector %s on node %s (region %s): windows of %ss, samples every %ss, "
        "devices from %s, allocations from %s, spool %s",
        __version__,
        built.node,
        built.region,
        cfg["window_seconds"],
        cfg["sample_seconds"],
        "simulation" if cfg.get("simulate") else cfg["device_source"],
        type(built.allocations).__name__,
        cfg["spool"],
    )
    try:
        if cfg.get("simulate_from"):
            ok = runner.simulate(
                parse_time(cfg["simulate_from"]),
                parse_time(cfg["simulate_to"]),
                float(cfg["drain_timeout"]),
            )
            return 0 if ok else 1
        if cfg.get("once"):
            return 0 if runner.once() else 1
        runner.forever()
        return 0
    finally:
        built.reader.close()
        spool.close()


if __name__ == "__main__":
    sys.exit(main())
