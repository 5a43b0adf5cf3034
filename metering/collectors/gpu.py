"""GPU collector: NVML samples → windows → one ``gpu.usage`` event per (org, device, window).

Run ``python -m metering.collectors.gpu --help``. How it works (docs/collectors.md has more):

- Every ``sample_seconds`` (paced by the monotonic clock) it reads every GPU and MIG instance.
  Each sample lands in the window of its wall-clock time; windows (default 60 s) start on
  multiples of their length, so a window never straddles a UTC hour.
- The open window's running totals are saved with every sample; a window closes when the clock
  passes its end. Closing writes a summary; attributing it to orgs (from the allocation file or
  API) turns it into events in the spool, in the same transaction that deletes the summary.
- Billed GPU-seconds = seconds the allocation overlaps the window × the device's share of its
  GPU (1, or slices/7 for MIG), rounded half-even to 6 places. A device unhealthy at any sample
  of the window (lost, XID, retired pages pending, reset required) bills 0 with the reason.
- A window the collector did not observe is not invented: the gap is logged, counted and shown
  on /healthz.
"""

import argparse
import logging
import math
import os
import signal
import socket
import sys
import time
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from .allocations import (
    AllocationSource,
    AllocationsUnavailable,
    ApiAllocations,
    FileAllocations,
)
from .common import (
    Clock,
    SimulatedClock,
    SystemClock,
    api_key_from,
    iso,
    load_document,
    parse_time,
    setup_logging,
)
from .nvml import DeviceInfo, Nvml, NvmlUnavailable, Reading
from .sender import Sender
from .simnvml import SimulatedNVML
from .spool import Spool, Transaction
from .telemetry import Telemetry

log = logging.getLogger("tessera.collectors.gpu")

MICRO = Decimal("0.000001")
MAX_ATTRIBUTION_SPAN = 86_400  # seconds of windows attributed per allocation request
GAPS_KEPT = 50


def quantize(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        MICRO, rounding=ROUND_HALF_EVEN
    )


def decimal_text(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class GpuCollector:
    def __init__(
        self,
        *,
        nvml: Nvml,
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
        except NvmlUnavailable as exc:
            self.telemetry.errors.labels("nvml_unavailable").inc()
            self.telemetry.problem("nvml", f"NVML unavailable: {exc}")
            log.error("NVML unavailable (%s); no samples until it is back", exc)
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

    def _read_all(self) -> dict[str, Reading]:
        readings: dict[str, Reading] = {}
        xids = self.nvml.xid_errors()
        for uuid, device in self.devices.items():
            if uuid in self.nvml.devices:
                reading = self.nvml.read(device)
            else:
                reading = Reading(uuid=uuid, problems=["device_missing"])
            reading.problems += [f"xid_{code}" for code in xids.get(uuid, [])]
            readings[uuid] = reading
        return readings

    def tick(self, now: float) -> None:
        """Close what has ended by ``now``, then take one sample at ``now``."""
        self.close_ended(now)
        if not self.ensure_open():
            return
        try:
            readings = self._read_all()
        except NvmlUnavailable as exc:
            self.opened = False
            self.telemetry.problem("nvml", str(exc))
            return
        except Exception as exc:  # an NVML failure must not kill the loop; the gap shows it
            if type(exc).__module__ == "pynvml" or "NVMLError" in type(exc).__name__:
                log.error("NVML failed (%s); re-initialising", exc)
                self.nvml.close()
                self.opened = False
                self.telemetry.errors.labels("nvml").inc()
                return
            raise
        start = int(now // self.window) * self.window
        with self.spool.transaction() as tx:
            cursor = tx.get_state("gpu:cursor") or {}
            window = tx.get_state("gpu:open")
            if window is not None and start < window["start"]:
                log.warning("wall clock went back to %s; sample ignored", iso(now))
                return
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
            by_device: dict[str, list[Any]] = {}
            for allocation in allocations:
                by_device.setdefault(allocation.device_uuid, []).append(allocation)
            with self.spool.transaction() as tx:
                added = 0
                for key in chunk:
                    summary = tx.get_state(key)
                    if summary is None:
                        continue
                    added += tx.add(self._events(summary, by_device))
                    tx.delete_state(key)
            self.telemetry.events_spooled.inc(added)
            done += len(chunk)
        return done

    def _events(
        self, summary: dict[str, Any], by_device: dict[str, list[Any]]
    ) -> list[dict[str, Any]]:
        start, end = summary["start"], summary["end"]
        events = []
        for uuid, acc in sorted(summary["devices"].items()):
            device = self.devices.get(uuid)
            if device is None:
                continue
            held: dict[str, Fraction] = {}
            for allocation in by_device.get(uuid, []):
                seconds = Fraction(allocation.overlap(start, end))
                if seconds > 0:
                    held[allocation.org] = held.get(allocation.org, Fraction(0)) + seconds
            idle = Fraction(end - start) - sum(held.values(), Fraction(0))
            self.telemetry.idle_gpu_seconds.inc(float(max(idle, Fraction(0)) * device.fraction))
            for org, seconds in sorted(held.items()):
                events.append(self._event(device, acc, org, seconds, start, end))
        return events

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
            round(acc["util_sum"] / acc["util_n"], 2)
            if acc["util_n"] and not device.is_mig
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
    def __init__(self, collector: GpuCollector, sender: Sender | None, clock: Clock) -> None:
        self.collector = collector
        self.sender = sender
        self.clock = clock
        self.stopping = False

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def _deliver(self) -> None:
        self.collector.attribute()
        if self.sender is not None and self.sender.ready():
            self.sender.flush()
            problem = None
            if self.sender.last_error and self.collector.spool.oldest_age() > 600:
                age = self.collector.spool.oldest_age()
                problem = f"cannot deliver for {age:.0f}s: {self.sender.last_error}"
            self.collector.telemetry.problem("delivery", problem)

    def once(self) -> None:
        self.collector.tick(self.clock.wall())
        self._deliver()

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
            while not self.stopping and self.clock.monotonic() < next_at:
                self.clock.sleep(min(0.5, next_at - self.clock.monotonic()))

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


DEFAULTS: dict[str, Any] = {
    "api_url": "http://127.0.0.1:8000",
    "spool": "var/gpu-collector.sqlite3",
    "window_seconds": 60,
    "sample_seconds": 5.0,
    "batch_size": 1000,
    "drain_timeout": 300.0,
    "log_level": "INFO",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metering.collectors.gpu",
        description=(
            "Tessera GPU collector: samples every GPU and MIG instance through NVML, closes "
            "windows on wall-clock boundaries and reports one gpu.usage event per (org, device, "
            "window) to POST /api/v1/events. Settings come from flags, then --config, then the "
            "environment (TESSERA_API_URL, TESSERA_COLLECTOR_KEY), then defaults."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--config", help="YAML or JSON file with any of these settings (keys use underscores)")
    add("--api-url", help=f"Tessera base URL (default {DEFAULTS['api_url']})")
    add("--api-key", help="collector API key (or env TESSERA_COLLECTOR_KEY)")
    add("--node", help="this node's name, as allocations name it (default: the host name)")
    add("--region", help="region reported in every event (default 'default')")
    add("--spool", help=f"spool database path (default {DEFAULTS['spool']})")
    add("--allocations-file", help="read allocations from this YAML/JSON file, not the API")
    add("--window-seconds", type=int, help="window length; must divide 3600 (default 60)")
    add("--sample-seconds", type=float, help="seconds between NVML samples (default 5)")
    add("--source", help="CloudEvents source (default tessera-gpu-collector/NODE)")
    add("--batch-size", type=int, help="events per POST (default 1000, at most 10000)")
    add("--health-port", type=int, help="serve /healthz and /metrics on this port")
    add("--once", action="store_true", help="take one sample, deliver what is due, and exit")
    add("--simulate", metavar="FLEET", help="use a simulated NVML over this fleet file")
    add("--simulate-from", metavar="TIME", help="with --simulate: run a simulated clock from TIME")
    add("--simulate-to", metavar="TIME", help="...to TIME (exclusive), without sleeping, then exit")
    add("--drain-timeout", type=float, help="seconds to keep sending after a simulation (300)")
    add("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    return parser


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.config:
        config = load_document(args.config) or {}
    merged = {**DEFAULTS}
    if os.environ.get("TESSERA_API_URL"):
        merged["api_url"] = os.environ["TESSERA_API_URL"]
    merged.update({k.replace("-", "_"): v for k, v in config.items()})
    merged.update({k: v for k, v in vars(args).items() if v not in (None, False)})
    merged["api_key"] = api_key_from(args.api_key, config)
    return merged


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = settings_from(args)
    setup_logging(cfg["log_level"])
    simulated = bool(cfg.get("simulate_from") or cfg.get("simulate_to"))
    if simulated and not (
        cfg.get("simulate") and cfg.get("simulate_from") and cfg.get("simulate_to")
    ):
        log.error("--simulate-from and --simulate-to need each other and --simulate")
        return 2
    clock: Clock = SimulatedClock(parse_time(cfg["simulate_from"])) if simulated else SystemClock()
    fleet: dict[str, Any] = load_document(cfg["simulate"]) or {} if cfg.get("simulate") else {}
    node = cfg.get("node") or fleet.get("node") or socket.gethostname()
    region = str(cfg.get("region") or fleet.get("region") or "default")
    if cfg.get("simulate"):
        nvml = Nvml(SimulatedNVML(fleet, clock.wall, node=node))
    else:
        nvml = Nvml()
    if not cfg.get("api_key"):
        log.error("no API key: pass --api-key or set TESSERA_COLLECTOR_KEY")
        return 2
    allocations: AllocationSource = (
        FileAllocations(cfg["allocations_file"])
        if cfg.get("allocations_file")
        else ApiAllocations(cfg["api_url"], cfg["api_key"])
    )
    telemetry = Telemetry("gpu")
    spool = Spool(Path(cfg["spool"]))
    collector = GpuCollector(
        nvml=nvml,
        allocations=allocations,
        spool=spool,
        telemetry=telemetry,
        node=node,
        region=region,
        window_seconds=int(cfg["window_seconds"]),
        sample_seconds=float(cfg["sample_seconds"]),
        source=cfg.get("source"),
    )
    sender = Sender(
        spool=spool,
        api_url=cfg["api_url"],
        api_key=cfg["api_key"],
        telemetry=telemetry,
        batch_size=int(cfg["batch_size"]),
    )
    if cfg.get("health_port") is not None:
        telemetry.serve(int(cfg["health_port"]), extra=collector.health_extra)
    runner = Runner(collector, sender, clock)
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    log.info(
        "GPU collector on node %s (region %s): windows of %ss, samples every %ss, spool %s",
        node,
        region,
        cfg["window_seconds"],
        cfg["sample_seconds"],
        cfg["spool"],
    )
    try:
        if simulated:
            ok = runner.simulate(
                parse_time(cfg["simulate_from"]),
                parse_time(cfg["simulate_to"]),
                float(cfg["drain_timeout"]),
            )
            return 0 if ok else 1
        if cfg.get("once"):
            runner.once()
            return 0
        runner.forever()
        return 0
    finally:
        nvml.close()
        spool.close()


if __name__ == "__main__":
    sys.exit(main())
