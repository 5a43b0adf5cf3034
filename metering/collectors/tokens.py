"""Token collector: LLM token usage into ``llm.tokens`` events.

Two sources (docs/collectors.md has the details):

(a) Gateway usage logs: JSON lines with an OpenAI-compatible ``usage``; one event per request,
    whose id is the request id. Offsets are saved in the spool in the same transaction as the
    events read, so a restart neither re-reads nor skips a line; rotation (a new inode at the
    path) finishes the old file first, truncation (copytruncate) starts again at 0.
(b) Prometheus metrics of dedicated inference servers (vLLM names by default): counters become
    deltas, summed per (endpoint, model, window) into one event each. The last values are saved
    with the deltas, so a failed scrape only delays tokens to the next one and a counter reset
    (a restarted server) counts from zero again: no invented tokens, none lost.
"""

import argparse
import functools
import hashlib
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from . import __version__
from .common import (
    COMMON_SETTINGS,
    Clock,
    ConfigError,
    Setting,
    SystemClock,
    absolute,
    build_parser,
    iso,
    parse_time,
    resolve_settings,
    setup_logging,
)
from .sender import Sender
from .spool import Spool, Transaction, encode
from .telemetry import Telemetry

log = logging.getLogger("tessera.collectors.tokens")

READ_CHUNK = 4 * 1024 * 1024
FINGERPRINT = 256  # bytes before the saved offset that must not change


def token_event(
    *,
    event_id: str,
    source: str,
    org: str,
    moment: float,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int,
    batch: bool,
    endpoint: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``llm.tokens`` CloudEvent (SPEC §4). Counts are ASCII decimal strings: input tokens
    (cached included), cached input tokens, uncached input tokens (input − cached, so a catalog
    prices the two apart without counting any token twice) and output tokens. Every count is
    always present, zero included, so a meter that reads one never meets an event without it.
    """
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": "llm.tokens",
        "subject": org,
        "time": iso(moment),
        "datacontenttype": "application/json",
        "data": {
            "model": model,
            "input_tokens": str(input_tokens),
            "cached_tokens": str(cached_tokens),
            "uncached_input_tokens": str(input_tokens - cached_tokens),
            "output_tokens": str(output_tokens),
            "batch": batch,
            "endpoint": endpoint,
            **(extra or {}),
        },
    }


# (a) Gateway logs.
def _text(record: dict[str, Any], name: str) -> str:
    value = _optional_text(record, name)
    if value is None:
        raise ValueError(f"{name} is missing")
    return value


def _optional_text(record: dict[str, Any], name: str) -> str | None:
    """A string field: valid Unicode (no lone surrogates), no control characters."""
    value = record.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid Unicode (a lone surrogate)") from exc
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{name} contains a control character")
    return value


def _count(usage: dict[str, Any], path: str, *, required: bool) -> int:
    """A non-negative integer at ``path`` (dotted) in ``usage``; absent is 0 only if allowed."""
    value: Any = usage
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        if required:
            raise ValueError(f"usage.{path} is missing")
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"usage.{path} must be a non-negative integer")
    return value


def usage_counts(usage: Any) -> tuple[int, int, int]:
    """(input tokens, cached input tokens, output tokens) from an OpenAI-compatible ``usage``.

    Chat Completions: ``prompt_tokens`` (required), ``completion_tokens`` (absent: 0, as in an
    embeddings answer), ``prompt_tokens_details.cached_tokens`` (absent: 0). Responses:
    ``input_tokens`` and ``output_tokens`` (both required), ``input_tokens_details.cached_tokens``
    (absent: 0). Cached tokens are part of the input (SPEC §4). Raises ValueError naming the
    field."""
    if not isinstance(usage, dict):
        raise ValueError("usage is missing")
    chat = "prompt_tokens" in usage or "completion_tokens" in usage
    responses = "input_tokens" in usage or "output_tokens" in usage
    if chat and responses:
        raise ValueError("usage mixes prompt_/completion_tokens with input_/output_tokens")
    if chat:
        prompt = _count(usage, "prompt_tokens", required=True)
        cached = _count(usage, "prompt_tokens_details.cached_tokens", required=False)
        output = _count(usage, "completion_tokens", required=False)
        name = "prompt_tokens"
    elif responses:
        prompt = _count(usage, "input_tokens", required=True)
        cached = _count(usage, "input_tokens_details.cached_tokens", required=False)
        output = _count(usage, "output_tokens", required=True)
        name = "input_tokens"
    else:
        raise ValueError(
            "usage has neither prompt_tokens (Chat Completions) nor input_tokens (Responses)"
        )
    if cached > prompt:
        raise ValueError(f"usage cached_tokens ({cached}) exceeds {name} ({prompt})")
    return prompt, cached, output


def record_to_event(record: Any, source: str) -> dict[str, Any]:
    """One gateway usage record → one event. Raises ValueError naming what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("a record must be a JSON object")
    if record.get("id") is None and record.get("request_id") is not None:
        record = {**record, "id": record["request_id"]}
    request_id = _text(record, "id")
    org = _text(record, "org")
    model = _text(record, "model")
    endpoint = _optional_text(record, "endpoint")
    input_tokens, cached_tokens, output_tokens = usage_counts(record.get("usage"))
    raw_time = record.get("created", record.get("time", record.get("timestamp")))
    if raw_time is None:
        raise ValueError("created (or time) is missing")
    try:
        moment = parse_time(raw_time)
        iso(moment)
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"created: {exc}") from exc
    batch = record.get("batch")
    if batch is None:
        batch = record.get("service_tier") == "batch"
    return token_event(
        event_id=request_id,
        source=source,
        org=org,
        moment=moment,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        batch=bool(batch),
        endpoint=endpoint,
    )


class LogTailer:
    def __init__(self, *, path: str, source: str, spool: Spool, telemetry: Telemetry) -> None:
        self.path = Path(path)
        self.source = source
        self.spool = spool
        self.telemetry = telemetry
        self.key = f"tokens:log:{self.path.resolve()}"

    def poll(self) -> int:
        """Read every complete new line; returns the number of events spooled."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return 0
        saved = self.spool.get_state(self.key)
        added = 0
        if saved and saved["ino"] != current.st_ino:
            rotated = self._find_rotated(saved)
            if rotated is not None:
                added += self._read(rotated, saved)
            else:
                log.warning("%s rotated and its old file is gone; reading the new one", self.path)
            saved = None
        if saved and not self._same_content(saved):
            log.warning("%s was truncated; reading it again from the start", self.path)
            saved = None
        state = saved or {"dev": current.st_dev, "ino": current.st_ino, "offset": 0}
        added += self._read(self.path, state)
        return added

    def _same_content(self, saved: dict[str, Any]) -> bool:
        """False when the file was truncated (copytruncate), even if it has regrown since:
        the bytes just before the saved offset must still be the ones we read there."""
        offset = saved["offset"]
        try:
            with open(self.path, "rb") as handle:
                start = max(0, offset - FINGERPRINT)
                handle.seek(start)
                before = handle.read(offset - start)
        except OSError:
            return True
        return len(before) == offset - start and _fingerprint(before) == saved.get("fingerprint")

    def _find_rotated(self, saved: dict[str, Any]) -> Path | None:
        """The old file, renamed beside the new one (usage.jsonl.1, usage.jsonl-20261001 ...)."""
        for candidate in sorted(self.path.parent.glob(self.path.name + "*")):
            try:
                stat = os.stat(candidate)
            except OSError:
                continue
            if stat.st_ino == saved["ino"] and stat.st_dev == saved["dev"]:
                return candidate
        return None

    def _read(self, path: Path, state: dict[str, Any]) -> int:
        added = 0
        try:
            handle = open(path, "rb")
        except OSError as exc:
            log.warning("cannot open %s: %s", path, exc)
            return 0
        with handle:
            stat = os.fstat(handle.fileno())
            if stat.st_ino != state["ino"]:
                # The path moved on between stat() and open(): start the new file from zero.
                state = {"dev": stat.st_dev, "ino": stat.st_ino, "offset": 0}
            offset = state["offset"]
            while True:
                handle.seek(offset)
                chunk = handle.read(READ_CHUNK)
                end = chunk.rfind(b"\n")
                if end < 0:
                    break  # no complete line yet: a writer is mid-line
                lines = chunk[: end + 1].splitlines()
                offset += end + 1
                handle.seek(max(0, offset - FINGERPRINT))
                fingerprint = _fingerprint(handle.read(offset - max(0, offset - FINGERPRINT)))
                with self.spool.transaction() as tx:
                    added += self._lines(tx, lines, path)
                    state = {**state, "offset": offset, "fingerprint": fingerprint}
                    tx.set_state(self.key, state)
                if len(chunk) < READ_CHUNK:
                    break
        return added

    def _lines(self, tx: Transaction, lines: list[bytes], path: Path) -> int:
        events = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                event = record_to_event(json.loads(raw), self.source)
                encode(event).encode("utf-8")  # what the spool will store: must be valid
                events.append(event)
                self.telemetry.lines.labels("ok").inc()
            except (ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
                self.telemetry.lines.labels("invalid").inc()
                text = raw.decode("utf-8", "replace")
                log.error("%s: unusable line kept aside (%s): %.200s", path, exc, text)
                digest = hashlib.sha256(raw).hexdigest()[:16]
                body = json.dumps({"file": str(path), "line": text})
                tx.reject(f"line:{path.name}:{digest}", body, [str(exc)])
        added = tx.add(events)
        for event in events:
            self.telemetry.tokens.labels("input").inc(int(event["data"]["input_tokens"]))
            self.telemetry.tokens.labels("output").inc(int(event["data"]["output_tokens"]))
        self.telemetry.events_spooled.inc(added)
        return added


def _fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# (b) Prometheus scraping.
@dataclass
class Endpoint:
    name: str  # stable: part of the event ids and of the saved counter state
    url: str  # http(s)://.../metrics or file:///path/to/metrics.prom
    org: str
    model_label: str = "model_name"
    input_metric: str = "vllm:prompt_tokens_total"
    output_metric: str = "vllm:generation_tokens_total"
    cached_metric: str | None = None
    batch: bool = False
    # A series seen for the first time counts from zero (vLLM's counters start at zero when the
    # server starts). Set false when adding a collector to a server that already served traffic
    # that was billed some other way.
    count_from_zero: bool = True

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> "Endpoint":
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"endpoint {raw.get('name')!r}: unknown keys {sorted(unknown)}")
        return cls(**raw)


KINDS = ("input", "output", "cached")
Counters = dict[str, tuple[str, dict[str, float]]]  # series key -> (model, {kind: value})


def parse_counters(text: str, endpoint: Endpoint) -> Counters:
    """Every series of the wanted counters: one per label set (a vLLM server has one per
    engine), each with its model and its input / output / cached values. Raises ValueError when
    the text is not Prometheus exposition text."""
    wanted = {endpoint.input_metric: "input", endpoint.output_metric: "output"}
    if endpoint.cached_metric:
        wanted[endpoint.cached_metric] = "cached"
    found: Counters = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name  # the parser adds _total to a counter's samples
            kind = (
                wanted.get(name)
                or wanted.get(name.removesuffix("_total"))
                or wanted.get(name + "_total")
            )
            if kind is None:
                continue
            model = sample.labels.get(endpoint.model_label)
            if model is None:
                continue
            key = json.dumps(sorted(sample.labels.items()), separators=(",", ":"))
            found.setdefault(key, (model, {}))[1][kind] = float(sample.value)
    return found


class Scraper:
    def __init__(
        self,
        *,
        endpoints: list[Endpoint],
        spool: Spool,
        telemetry: Telemetry,
        window_seconds: int = 60,
        source: str = "tessera-token-collector",
        client: httpx.Client | None = None,
    ) -> None:
        if window_seconds <= 0 or 3600 % window_seconds:
            raise ValueError("window_seconds must divide 3600")
        self.endpoints = endpoints
        self.spool = spool
        self.telemetry = telemetry
        self.window = window_seconds
        self.source = source
        self.client = client or httpx.Client(timeout=10.0)

    def fetch(self, endpoint: Endpoint) -> str:
        if endpoint.url.startswith("file://"):
            return Path(endpoint.url.removeprefix("file://")).read_text(encoding="utf-8")
        response = self.client.get(endpoint.url)
        response.raise_for_status()
        return response.text

    def scrape_all(self, now: float) -> None:
        for endpoint in self.endpoints:
            self.ingest(endpoint, functools.partial(self.fetch, endpoint), now)
        self.flush(now)

    def ingest(self, endpoint: Endpoint, read: Callable[[], str], now: float) -> bool:
        """Read one scrape (live or recorded) and count it; a body that cannot be read or is
        not Prometheus text changes nothing (the next good scrape's delta covers it) and is
        reported: a warning, ``token_collector_scrapes{result="failed"}``, /healthz."""
        try:
            counters = parse_counters(read(), endpoint)
        except (OSError, httpx.HTTPError, ValueError) as exc:
            self.telemetry.scrapes.labels("failed").inc()
            self.telemetry.problem(f"scrape:{endpoint.name}", f"{type(exc).__name__}: {exc}")
            log.warning("scrape of %s failed: %s", endpoint.name, exc)
            return False
        self.telemetry.problem(f"scrape:{endpoint.name}", None)
        self.telemetry.scrapes.labels("ok").inc()
        self.observe(endpoint, counters, now)
        return True

    def observe(self, endpoint: Endpoint, counters: Counters, now: float) -> None:
        """Turn one scrape's counter values into deltas in the window of ``now``.

        Deltas and resets are per series (SPEC §4): one engine restarting does not hide the
        others' progress. A counter that went down restarted from zero: its new value is what
        was counted since; tokens between the last scrape and the restart are unknowable."""
        key = f"tokens:scrape:{endpoint.name}"
        start = int(now // self.window) * self.window
        with self.spool.transaction() as tx:
            state = tx.get_state(key) or {"version": 2, "series": {}, "windows": {}}
            legacy: dict[str, dict[str, int]] = {}
            if state.get("version") != 2:  # saved per model by an older collector
                legacy = state.get("series") or {}
                state = {"version": 2, "series": {}, "windows": state.get("windows") or {}}
            deltas: dict[str, dict[str, int]] = {}
            models = {model for model, _ in counters.values()}
            for model in sorted(models & set(legacy)):
                totals: dict[str, float] = {}
                for m, values in counters.values():
                    for kind, value in values.items():
                        if m == model:
                            totals[kind] = totals.get(kind, 0.0) + value
                deltas[model] = self._deltas(endpoint, model, totals, legacy[model])
            for series, (model, values) in sorted(counters.items()):
                if model not in legacy:
                    previous = state["series"].get(series)
                    found = self._deltas(endpoint, series, values, previous)
                    per_model = deltas.setdefault(model, {})
                    for kind, delta in found.items():
                        per_model[kind] = per_model.get(kind, 0) + delta
                state["series"][series] = {k: int(round(v)) for k, v in values.items()}
            for model, found in sorted(deltas.items()):
                if any(found.values()):
                    slot = state["windows"].setdefault(
                        f"{start}|{model}", {"input": 0, "output": 0, "cached": 0}
                    )
                    for kind, delta in found.items():
                        slot[kind] += delta
            tx.set_state(key, state)

    def _deltas(
        self,
        endpoint: Endpoint,
        series: str,
        values: dict[str, float],
        previous: dict[str, int] | None,
    ) -> dict[str, int]:
        deltas = {}
        for kind in KINDS:
            if kind not in values:
                continue
            value = int(round(values[kind]))
            before = None if previous is None else previous.get(kind)
            if before is None:
                deltas[kind] = value if endpoint.count_from_zero else 0
            elif value < before:
                self.telemetry.counter_resets.inc()
                log.warning(
                    "%s %s %s went back from %d to %d: counter reset",
                    endpoint.name,
                    series,
                    kind,
                    before,
                    value,
                )
                deltas[kind] = value
            else:
                deltas[kind] = value - before
        return deltas

    def flush(self, now: float) -> int:
        """Emit every window that has ended by ``now``."""
        added = 0
        for endpoint in self.endpoints:
            key = f"tokens:scrape:{endpoint.name}"
            with self.spool.transaction() as tx:
                state = tx.get_state(key)
                if not state:
                    continue
                events = []
                for slot_key in sorted(state["windows"]):
                    start_text, model = slot_key.split("|", 1)
                    start = int(start_text)
                    if start + self.window > now:
                        continue
                    slot = state["windows"].pop(slot_key)
                    if slot["cached"] > slot["input"]:
                        # The cached counter ran ahead of the input one within the window
                        # (scraped a moment apart): never more cached than input tokens.
                        log.warning(
                            "%s %s: %d cached of %d input tokens; cached capped",
                            endpoint.name,
                            model,
                            slot["cached"],
                            slot["input"],
                        )
                        slot["cached"] = slot["input"]
                    events.append(
                        token_event(
                            event_id=f"{endpoint.name}/{model}/{iso(start)}",
                            source=self.source,
                            org=endpoint.org,
                            moment=start,
                            model=model,
                            input_tokens=slot["input"],
                            output_tokens=slot["output"],
                            cached_tokens=slot["cached"],
                            batch=endpoint.batch,
                            endpoint=endpoint.name,
                            extra={
                                "window_start": iso(start),
                                "window_end": iso(start + self.window),
                            },
                        )
                    )
                    self.telemetry.tokens.labels("input").inc(slot["input"])
                    self.telemetry.tokens.labels("output").inc(slot["output"])
                added += tx.add(events)
                tx.set_state(key, state)
        self.telemetry.events_spooled.inc(added)
        return added


def replay_files(directory: Path) -> list[tuple[float, str, Path]]:
    """Recorded scrapes: DIR/<endpoint>/<time>.prom, time as RFC 3339 (':' may be '-') or unix."""
    found = []
    for path in sorted(directory.glob("*/*.prom")):
        stem = path.stem
        try:
            try:
                moment = float(stem)
            except ValueError:
                date, _, clock = stem.partition("T")
                moment = parse_time(f"{date}T{clock.replace('-', ':')}")
        except ValueError:
            log.warning("replay: %s is not named by its time; skipped", path)
            continue
        found.append((moment, path.parent.name, path))
    return sorted(found)


def replay(scraper: Scraper, directory: Path) -> int:
    """Feed recorded scrapes in time order, as if scraped then; skip files replayed before."""
    by_name = {e.name: e for e in scraper.endpoints}
    done = scraper.spool.get_state("tokens:replay") or {}
    count = 0
    last = 0.0
    for moment, name, path in replay_files(directory):
        endpoint = by_name.get(name)
        if endpoint is None:
            log.warning("replay: no endpoint %r in the config; %s skipped", name, path)
            continue
        if moment <= done.get(name, -math.inf):
            continue
        scraper.ingest(endpoint, functools.partial(path.read_text, encoding="utf-8"), moment)
        scraper.flush(moment)
        done[name] = moment
        scraper.spool.set_state("tokens:replay", done)
        count += 1
        last = max(last, moment)
    if last:
        scraper.flush(math.floor(last / scraper.window) * scraper.window + scraper.window)
    return count


SETTINGS: tuple[Setting, ...] = (
    *COMMON_SETTINGS,
    Setting("spool", "path", "var/token-collector.sqlite3", "spool database path"),
    Setting("logs", "json", [], "gateway usage logs to tail: paths, or JSON [{path, source}]",
            repeat=True),
    Setting("endpoints", "json", [], "inference servers to scrape: NAME=ORG=URL (URL may be "
            "file:///path), or JSON [{name, org, url, ...}]", repeat=True),
    Setting("model_label", default="model_name", help="label naming the model (endpoints "
            "that do not set their own)"),
    Setting("input_metric", default="vllm:prompt_tokens_total", help="input tokens counter"),
    Setting("output_metric", default="vllm:generation_tokens_total",
            help="output tokens counter"),
    Setting("cached_metric", help="cached input tokens counter (none by default)"),
    Setting("count_from_zero", "bool", True, "a series first seen counts from zero"),
    Setting("window_seconds", "int", 60, "window for scraped counters; divides 3600"),
    Setting("interval_seconds", "float", 15.0, "seconds between polls and scrapes"),
    Setting("source", default="tessera-token-collector",
            help="CloudEvents source of scraped events and of logs without their own"),
    Setting("once", "bool", False, "poll and scrape once, deliver, and exit"),
    Setting("replay", "path", help="replay recorded scrapes DIR/<endpoint>/<time>.prom, exit"),
)  # fmt: skip
ENDPOINT_DEFAULTS = ("model_label", "input_metric", "output_metric", "cached_metric")


def build_token_parser() -> argparse.ArgumentParser:
    return build_parser(
        "python -m metering.collectors.tokens",
        "Tessera token collector: tails gateway usage logs (JSON lines, Chat Completions or "
        "Responses usage) and scrapes the Prometheus metrics of dedicated inference servers, "
        "and reports llm.tokens events to POST /api/v1/events.",
        SETTINGS,
    )


def _entries(raw: Any) -> list[Any]:
    items = raw if isinstance(raw, list) else [raw]
    found: list[Any] = []
    for item in items:
        if isinstance(item, str) and item.strip()[:1] == "[":
            found.extend(json.loads(item))
        elif isinstance(item, str):
            found.extend(item.split())
        else:
            found.append(item)
    return found


def sources_from(cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Endpoint]]:
    """Log files and endpoints from resolved settings; paths made absolute (relative to the
    config file when they came from it). Raises ConfigError naming the bad entry."""
    logs: list[dict[str, Any]] = []
    base = Path(cfg["_base"]["logs"])
    try:
        for entry in _entries(cfg["logs"]):
            item = {"path": entry} if isinstance(entry, str) else dict(entry)
            if set(item) - {"path", "source"} or not item.get("path"):
                raise ValueError(f"{entry!r}: expected a path or {{path, source}}")
            logs.append({**item, "path": absolute(str(item["path"]), base)})
        endpoints = []
        base = Path(cfg["_base"]["endpoints"])
        for entry in _entries(cfg["endpoints"]):
            if isinstance(entry, str):
                name, org, url = entry.split("=", 2)
                entry = {"name": name, "org": org, "url": url}
            item = {k: cfg[k] for k in ENDPOINT_DEFAULTS if cfg.get(k)}
            item["count_from_zero"] = cfg["count_from_zero"]
            item.update(dict(entry))
            url = str(item.get("url", ""))
            if url.startswith("file://") and not url.startswith("file:///"):
                item["url"] = "file://" + absolute(url.removeprefix("file://"), base)
            endpoints.append(Endpoint.from_config(item))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"logs/endpoints: {exc}") from exc
    return logs, endpoints


def main(argv: list[str] | None = None) -> int:
    args = build_token_parser().parse_args(argv)
    try:
        cfg = resolve_settings(args, SETTINGS)
        logs, endpoints = sources_from(cfg)
    except ConfigError as exc:
        setup_logging("INFO")
        log.error("%s", exc)
        return 2
    setup_logging(cfg["log_level"])
    api_key = cfg.get("api_key")
    if not api_key:
        log.error("no API key: --api-key or TESSERA_COLLECTOR_API_KEY (or TESSERA_COLLECTOR_KEY)")
        return 2
    if not logs and not endpoints:
        log.error("nothing to collect: give --logs PATH or --endpoints NAME=ORG=URL (or logs: / "
                  "endpoints: in the config)")  # fmt: skip
        return 2
    missing = [x["path"] for x in logs if not Path(x["path"]).is_file()]
    if missing:
        log.error("log file(s) not found: %s (create them empty if the gateway has not "
                  "written yet)", ", ".join(missing))  # fmt: skip
        return 2
    if cfg.get("replay") and not Path(cfg["replay"]).is_dir():
        log.error("--replay %s: not a directory", cfg["replay"])
        return 2
    telemetry = Telemetry("tokens")
    spool = Spool(Path(cfg["spool"]))
    tailers = [
        LogTailer(
            path=x["path"], source=x.get("source", cfg["source"]), spool=spool, telemetry=telemetry
        )
        for x in logs
    ]
    try:
        scraper = Scraper(
            endpoints=endpoints,
            spool=spool,
            telemetry=telemetry,
            window_seconds=int(cfg["window_seconds"]),
            source=cfg["source"],
        )
    except ValueError as exc:
        log.error("%s", exc)
        spool.close()
        return 2
    sender = Sender(
        spool=spool,
        api_url=cfg["api_url"],
        api_key=api_key,
        telemetry=telemetry,
        batch_size=int(cfg["batch_size"]),
    )
    if cfg.get("health_port") is not None:
        telemetry.serve(
            int(cfg["health_port"]),
            extra=lambda: {
                "spool_events": spool.pending(),
                "rejected_events": spool.rejected_count(),
            },
        )
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    clock: Clock = SystemClock()
    log.info(
        "token collector %s: %d logs, %d endpoints, spool %s",
        __version__,
        len(tailers),
        len(endpoints),
        cfg["spool"],
    )
    try:
        if cfg.get("replay"):
            replayed = replay(scraper, Path(cfg["replay"]))
            log.info("replayed %d recorded scrapes", replayed)
            return 0 if sender.drain(float(cfg["drain_timeout"])) else 1
        while True:
            for tailer in tailers:
                tailer.poll()
            scraper.scrape_all(clock.wall())
            if sender.ready():
                sender.flush()
            if cfg.get("once"):
                return 0 if sender.drain(float(cfg["drain_timeout"])) else 1
            deadline = clock.monotonic() + float(cfg["interval_seconds"])
            while not stopping and clock.monotonic() < deadline:
                clock.sleep(min(0.5, deadline - clock.monotonic()))
            if stopping:
                return 0
    finally:
        spool.close()


if __name__ == "__main__":
    sys.exit(main())
