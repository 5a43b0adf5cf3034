"""Who holds which GPU or MIG instance over time, and the one rule that divides a window.

Sources (SPEC §4):

- a file a scheduler writes, and Tessera's ``GET /api/v1/allocations``: allocations with an
  ``org`` (slug), ``node``, ``device_uuid``, ``start`` (RFC 3339, inclusive) and ``end``
  (exclusive; null: still held). The file is YAML or JSON, a list or ``{"allocations": [...]}``,
  re-read whenever it changes (write a temporary file and rename it over the old one);
- sources that only say who holds what *now* (the kubelet, Slurm, a DCGM exporter): an
  ``ObservedAllocations`` polls them and keeps what it saw in the spool as allocations.

Whatever the source, ``divide`` gives a device's window to its holders: never more seconds than
the window has, overlapping claims refused and reported (``Conflict``).
"""

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import httpx

from .common import iso, load_document, parse_time
from .devices import DeviceInfo
from .spool import Spool

log = logging.getLogger("tessera.collectors.allocations")


class AllocationsUnavailable(Exception):
    """The source cannot answer now; the windows wait and are attributed later."""


@dataclass(frozen=True)
class Allocation:
    org: str
    device_uuid: str
    start: float  # unix seconds, inclusive
    end: float | None  # exclusive; None: still held
    holder: str = ""  # who, in the source's words (pod, job); for conflict reports

    def overlap(self, start: float, end: float) -> float:
        """Seconds of [start, end) this allocation covers."""
        upper = end if self.end is None else min(end, self.end)
        return max(0.0, upper - max(start, self.start))


@dataclass(frozen=True)
class Conflict:
    """Seconds of one device claimed by more than one org at once."""

    device_uuid: str
    start: float  # unix seconds of the contested span
    end: float
    orgs: tuple[str, ...]  # every org that claimed the span, sorted
    holder: str | None  # the org billed for it (it held the device first), None: nobody
    claims: tuple[str, ...] = ()  # the claims, in the source's words

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.end) - Fraction(self.start)

    def describe(self) -> str:
        billed = f"billed to {self.holder}" if self.holder else "billed to nobody"
        return (
            f"{self.device_uuid} claimed by {', '.join(self.orgs)} over {iso(self.start)}.."
            f"{iso(self.end)} ({float(self.seconds):g} s): {billed}"
            + (f" [{'; '.join(self.claims)}]" if self.claims else "")
        )


def divide(
    allocations: Iterable[Allocation], start: float, end: float
) -> tuple[dict[str, Fraction], list[Conflict]]:
    """Seconds of one device's window ``[start, end)`` per org, and the conflicts.

    The rule every source passes (SPEC §4, "a device is never billed for more than the
    window's length"): each second goes to at most one org. Overlapping rows of one org count
    once. When orgs overlap, the one whose claim began first keeps the device, as the
    allocations API refuses a later overlapping allocation with 409; claims that began at the
    same instant are all refused for the overlap. Every overlap between orgs is a Conflict.
    """
    rows = [a for a in allocations if a.overlap(start, end) > 0]
    lo, hi = Fraction(start), Fraction(end)
    cuts = {lo, hi}
    for a in rows:
        cuts.add(max(lo, Fraction(a.start)))
        cuts.add(hi if a.end is None else min(hi, Fraction(a.end)))
    points = sorted(cuts)
    held: dict[str, Fraction] = {}
    conflicts: list[Conflict] = []
    for a_, b_ in zip(points, points[1:], strict=False):
        active = [
            a for a in rows if Fraction(a.start) <= a_ and (a.end is None or Fraction(a.end) >= b_)
        ]
        orgs = sorted({a.org for a in active})
        if not orgs:
            continue
        winner: str | None = orgs[0]
        if len(orgs) > 1:
            first = min(a.start for a in active)
            earliest = {a.org for a in active if a.start == first}
            winner = earliest.pop() if len(earliest) == 1 else None
            conflict = Conflict(
                device_uuid=active[0].device_uuid,
                start=float(a_),
                end=float(b_),
                orgs=tuple(orgs),
                holder=winner,
                claims=tuple(sorted({a.holder or a.org for a in active})),
            )
            previous = conflicts[-1] if conflicts else None
            if (
                previous
                and previous.end == conflict.start
                and (previous.orgs, previous.holder) == (conflict.orgs, conflict.holder)
            ):
                claims = tuple(sorted(set(previous.claims) | set(conflict.claims)))
                conflicts[-1] = Conflict(
                    previous.device_uuid,
                    previous.start,
                    conflict.end,
                    conflict.orgs,
                    winner,
                    claims,
                )
            else:
                conflicts.append(conflict)
        if winner is not None:
            held[winner] = held.get(winner, Fraction(0)) + (b_ - a_)
    return held, conflicts


class AllocationSource(Protocol):
    def observe(self, now: float, devices: Mapping[str, DeviceInfo]) -> None:
        """Poll a source that only knows the present (no-op for the others)."""
        ...

    def allocations(self, node: str, start: float, end: float) -> list[Allocation]:
        """Allocations overlapping ``[start, end)``. Raises AllocationsUnavailable."""
        ...

    def forget_before(self, moment: float) -> None:
        """Every window before ``moment`` is attributed: what only served them may go."""
        ...


class RecordedAllocations:
    """Sources that keep their own history (a file, the API): nothing to observe or forget."""

    def observe(self, now: float, devices: Mapping[str, DeviceInfo]) -> None:
        return None

    def forget_before(self, moment: float) -> None:
        return None


def _parse(raw: dict[str, Any], where: str) -> tuple[str, Allocation]:
    try:
        end = raw.get("end")
        allocation = Allocation(
            org=str(raw["org"]),
            device_uuid=str(raw["device_uuid"]),
            start=parse_time(raw["start"]),
            end=None if end is None else parse_time(end),
        )
        return str(raw.get("node", "")), allocation
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc!r}") from exc


class FileAllocations(RecordedAllocations):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._items: list[tuple[str, Allocation]] = []

    def _load(self) -> None:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise AllocationsUnavailable(f"{self.path}: {exc}") from exc
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            document = load_document(self.path)
            rows = document.get("allocations", []) if isinstance(document, dict) else document
            items = [_parse(row, f"{self.path}[{i}]") for i, row in enumerate(rows or [])]
        except (OSError, ValueError, AttributeError) as exc:
            raise AllocationsUnavailable(
                f"{self.path} is not a valid allocation file: {exc}"
            ) from exc
        self._items, self._stamp = items, stamp
        log.info("read %d allocations from %s", len(items), self.path)

    def allocations(self, node: str, start: float, end: float) -> list[Allocation]:
        self._load()
        return [
            a
            for n, a in self._items
            if n in ("", node) and a.start < end and (a.end is None or a.end > start)
        ]


class ApiAllocations(RecordedAllocations):
    """``GET /api/v1/allocations?node=&start=&end=`` with the collector key."""

    def __init__(self, api_url: str, api_key: str, client: httpx.Client | None = None) -> None:
        self.url = api_url.rstrip("/") + "/api/v1/allocations"
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.client = client or httpx.Client(timeout=30.0)

    def allocations(self, node: str, start: float, end: float) -> list[Allocation]:
        """Every page of the answer (the list is cursor-paginated: follow ``next``)."""
        url: str | None = self.url
        params: dict[str, str] | None = {"node": node, "start": iso(start), "end": iso(end)}
        found: list[Allocation] = []
        while url:
            try:
                response = self.client.get(url, params=params, headers=self.headers)
            except httpx.HTTPError as exc:
                raise AllocationsUnavailable(f"{type(exc).__name__}: {exc}") from exc
            if response.status_code != 200:
                raise AllocationsUnavailable(f"HTTP {response.status_code}: {response.text[:200]}")
            try:
                page = response.json()
                rows = page["results"]
                found += [_parse(row, f"results[{i}]")[1] for i, row in enumerate(rows)]
            except (ValueError, KeyError, TypeError) as exc:
                raise AllocationsUnavailable(f"unreadable allocations: {exc}") from exc
            url, params = page.get("next"), None  # the next link carries the query
        return found


@dataclass(frozen=True)
class Claim:
    """A device held now, as a source that only knows the present says it."""

    device_uuid: str
    org: str | None  # None: the holder maps to no org (reported, not billed)
    holder: str  # the source's words: "namespace/pod/container", "job 4242 (account)"
    why_no_org: str = ""


class Probe(Protocol):
    """The kubelet, Slurm, a DCGM exporter: who holds which device at this instant."""

    name: str

    def claims(self, devices: Mapping[str, DeviceInfo], now: float) -> list[Claim]:
        """Raises AllocationsUnavailable when the source cannot answer."""
        ...


class ObservedAllocations:
    """Turns a probe's snapshots into allocations, kept in the spool (they must outlive a
    restart until their windows are attributed).

    A claim seen at two observations less than ``max_gap`` seconds apart is held in between;
    one that disappears was held until the observation that no longer saw it. After a longer
    silence (the source or the collector was down) nothing is assumed across it: claims end at
    the last observation that saw them. So attribution is as fine as the observations (every
    ``observe_seconds``) and a window is attributed only once an observation at or after its end
    (or a gap) has settled it.
    """

    def __init__(self, probe: Probe, spool: Spool, *, max_gap: float) -> None:
        self.probe = probe
        self.spool = spool
        self.max_gap = max_gap
        self.key = f"alloc:{probe.name}"
        self.unattributed: dict[str, str] = {}  # at the last observation: holder -> why no org

    def _state(self) -> dict[str, Any]:
        return self.spool.get_state(self.key) or {"last": None, "open": {}, "closed": []}

    def observe(self, now: float, devices: Mapping[str, DeviceInfo]) -> None:
        claims = self.probe.claims(devices, now)
        self.unattributed = {c.holder: c.why_no_org for c in claims if c.org is None}
        seen = {f"{c.device_uuid}|{c.org}|{c.holder}": c for c in claims if c.org is not None}
        with self.spool.transaction() as tx:
            state = tx.get_state(self.key) or {"last": None, "open": {}, "closed": []}
            last = state["last"]
            if last is not None and now < last:
                log.warning("clock went back to %s; observation ignored", iso(now))
                return
            continuing = last is not None and now - last <= self.max_gap
            until = now if continuing else last
            for key, row in list(state["open"].items()):
                if key in seen and continuing:
                    continue
                del state["open"][key]
                if until is not None and until > row["start"]:
                    state["closed"].append({**row, "end": until})
            for key, claim in seen.items():
                state["open"].setdefault(
                    key,
                    {
                        "device": claim.device_uuid,
                        "org": claim.org,
                        "holder": claim.holder,
                        "start": now,
                    },
                )
            state["last"] = now
            tx.set_state(self.key, state)

    def allocations(self, node: str, start: float, end: float) -> list[Allocation]:
        state = self._state()
        last = state["last"]
        if last is None or last < end:
            seen = "nothing yet" if last is None else f"only up to {iso(last)}"
            raise AllocationsUnavailable(f"{self.probe.name} observed {seen}, not {iso(end)}")
        rows = [*state["closed"], *({**r, "end": last} for r in state["open"].values())]
        return [
            Allocation(r["org"], r["device"], r["start"], r["end"], r["holder"])
            for r in rows
            if r["start"] < end and r["end"] > start
        ]

    def forget_before(self, moment: float) -> None:
        with self.spool.transaction() as tx:
            state = tx.get_state(self.key)
            if not state:
                return
            kept = [r for r in state["closed"] if r["end"] > moment]
            if len(kept) != len(state["closed"]):
                state["closed"] = kept
                tx.set_state(self.key, state)


class MappingFile:
    """A YAML/JSON mapping (namespace → org, Slurm account → org), re-read when it changes."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._stamp: tuple[int, int, int] | None = None
        self._mapping: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        if self.path is None:
            return None
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                document = load_document(self.path) or {}
                if not isinstance(document, dict):
                    raise ValueError("expected a mapping")
                self._mapping = {str(k): str(v) for k, v in document.items()}
                self._stamp = stamp
                log.info("read %d mappings from %s", len(self._mapping), self.path)
        except (OSError, ValueError) as exc:
            log.error("mapping file %s unusable (%s); keeping the last good one", self.path, exc)
        return self._mapping.get(key)
