"""Who holds which GPU or MIG instance over time: from a file a scheduler writes, or the API.

Both give allocations with the fields of ``GET /api/v1/allocations``: ``org`` (slug), ``node``,
``device_uuid``, ``start`` (RFC 3339, inclusive), ``end`` (exclusive; null: still held).

The file is YAML or JSON, either a list of allocations or ``{"allocations": [...]}``; it is
re-read whenever it changes, so the scheduler can rewrite it in place (write a temporary file and
rename it over the old one, so the collector never reads half a file).
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from .common import iso, load_document, parse_time

log = logging.getLogger("tessera.collectors.allocations")


class AllocationsUnavailable(Exception):
    """The source cannot answer now; the windows wait and are attributed later."""


@dataclass(frozen=True)
class Allocation:
    org: str
    device_uuid: str
    start: float  # unix seconds, inclusive
    end: float | None  # exclusive; None: still held

    def overlap(self, start: float, end: float) -> float:
        """Seconds of [start, end) this allocation covers."""
        upper = end if self.end is None else min(end, self.end)
        return max(0.0, upper - max(start, self.start))


class AllocationSource(Protocol):
    def allocations(self, node: str, start: float, end: float) -> list[Allocation]: ...


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


class FileAllocations:
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


class ApiAllocations:
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
