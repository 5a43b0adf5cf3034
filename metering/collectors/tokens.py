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
import hashlib
import json
import logging
import math
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .common import (
    Clock,
    SystemClock,
    api_key_from,
    iso,
    load_document,
    parse_time,
    setup_logging,
)
from .sender import Sender
from .spool import Spool, Transaction
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
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_tokens": cached_tokens,
            "batch": batch,
            "endpoint": endpoint,
            **(extra or {}),
        },
    }


# (a) Gateway logs.
def record_to_event(record: Any, source: str) -> dict[str, Any]:
    """One gateway usage record → one event. Raises ValueError naming what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("a record must be a JSON object")
    request_id = record.get("id") or record.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise ValueError("id (the request id) is missing")
    org = record.get("org")
    if not isinstance(org, str) or not org:
        raise ValueError("org is missing")
    model = record.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("model is missing")
    usage = record.get("usage")
    if not isinstance(usage, dict):
        raise ValueError("usage is missing")
    details = usage.get("prompt_tokens_details") or {}

    def count(value: Any, name: str) -> int:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
        return value

    raw_time = record.get("created", record.get("time", record.get("timestamp")))
    if raw_time is None:
        raise ValueError("created (or time) is missing")
    try:
        moment = parse_time(raw_time)
    except ValueError as exc:
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
        input_tokens=count(usage.get("prompt_tokens"), "usage.prompt_tokens"),
        output_tokens=count(usage.get("completion_tokens"), "usage.completion_tokens"),
        cached_tokens=count(
            details.get("cached_tokens"), "usage.prompt_tokens_details.cached_tokens"
        ),
        batch=bool(batch),
        endpoint=record.get("endpoint"),
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
                events.append(record_to_event(json.loads(raw), self.source))
                self.telemetry.lines.labels("ok").inc()
            except (ValueError, UnicodeDecodeError) as exc:
                self.telemetry.lines.labels("invalid").inc()
                text = raw.decode("utf-8", "replace")
                log.error("%s: unusable line kept aside (%s): %.200s", path, exc, text)
                digest = hashlib.sha256(raw).hexdigest()[:16]
                body = json.dumps({"file": str(path), "line": text})
                tx.reject(f"line:{path.name}:{digest}", body, [str(exc)])
        added = tx.add(events)
        for event in events:
            self.telemetry.tokens.labels("input").inc(event["data"]["input_tokens"])
            self.telemetry.tokens.labels("output").inc(event["data"]["output_tokens"])
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


def parse_counters(text: str, endpoint: Endpoint) -> dict[str, dict[str, float]]:
    """{model: {"input"|"output"|"cached": value}}, summing series that differ in other labels."""
    wanted = {endpoint.input_metric: "input", endpoint.output_metric: "output"}
    if endpoint.cached_metric:
        wanted[endpoint.cached_metric] = "cached"
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            kind = wanted.get(sample.name)
            if kind is None:
                continue
            model = sample.labels.get(endpoint.model_label)
            if model is None:
                continue
            totals = found.setdefault(model, {})
            totals[kind] = totals.get(kind, 0.0) + float(sample.value)
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
            try:
                text = self.fetch(endpoint)
                counters = parse_counters(text, endpoint)
            except (OSError, httpx.HTTPError, ValueError) as exc:
                # Nothing is updated: the next good scrape's delta covers this one's tokens.
                self.telemetry.scrapes.labels("failed").inc()
                self.telemetry.problem(f"scrape:{endpoint.name}", f"{type(exc).__name__}: {exc}")
                log.warning("scrape of %s failed: %s", endpoint.name, exc)
                continue
            self.telemetry.problem(f"scrape:{endpoint.name}", None)
            self.telemetry.scrapes.labels("ok").inc()
            self.observe(endpoint, counters, now)
        self.flush(now)

    def observe(
        self, endpoint: Endpoint, counters: dict[str, dict[str, float]], now: float
    ) -> None:
        """Turn one scrape's counter values into deltas in the window of ``now``."""
        key = f"tokens:scrape:{endpoint.name}"
        start = int(now // self.window) * self.window
        with self.spool.transaction() as tx:
            state = tx.get_state(key) or {"series": {}, "windows": {}}
            for model, values in sorted(counters.items()):
                last = state["series"].get(model)
                deltas = {}
                for kind in ("input", "output", "cached"):
                    if kind not in values:
                        continue
                    value = int(round(values[kind]))
                    previous = None if last is None else last.get(kind)
                    if previous is None:
                        delta = value if endpoint.count_from_zero else 0
                    elif value < previous:
                        # The server restarted: its counter began again at zero. Tokens counted
                        # between our last scrape and the restart are unknowable; those since are.
                        self.telemetry.counter_resets.inc()
                        log.warning(
                            "%s %s %s went back from %d to %d: counter reset",
                            endpoint.name,
                            model,
                            kind,
                            previous,
                            value,
                        )
                        delta = value
                    else:
                        delta = value - previous
                    deltas[kind] = delta
                state["series"][model] = {k: int(round(v)) for k, v in values.items()}
                if any(deltas.values()):
                    slot = state["windows"].setdefault(
                        f"{start}|{model}", {"input": 0, "output": 0, "cached": 0}
                    )
                    for kind, delta in deltas.items():
                        slot[kind] += delta
            tx.set_state(key, state)

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
            moment = float(stem)
        except ValueError:
            date, _, clock = stem.partition("T")
            moment = parse_time(f"{date}T{clock.replace('-', ':')}")
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
        counters = parse_counters(path.read_text(encoding="utf-8"), endpoint)
        scraper.observe(endpoint, counters, moment)
        scraper.flush(moment)
        done[name] = moment
        scraper.spool.set_state("tokens:replay", done)
        count += 1
        last = max(last, moment)
    if last:
        scraper.flush(math.floor(last / scraper.window) * scraper.window + scraper.window)
    return count


DEFAULTS: dict[str, Any] = {
    "api_url": "http://127.0.0.1:8000",
    "spool": "var/token-collector.sqlite3",
    "window_seconds": 60,
    "interval_seconds": 15.0,
    "batch_size": 1000,
    "drain_timeout": 300.0,
    "log_level": "INFO",
    "source": "tessera-token-collector",
    "logs": [],
    "endpoints": [],
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metering.collectors.tokens",
        description=(
            "Tessera token collector: tails gateway usage logs (JSON lines) and scrapes the "
            "Prometheus metrics of dedicated inference servers, and reports llm.tokens events "
            "to POST /api/v1/events. Log files and endpoints are listed in --config (see "
            "examples/tokens.yaml); --log and --endpoint add more from the command line."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--config", help="YAML or JSON file: api_url, spool, logs: [...], endpoints: [...], ...")
    add("--api-url", help=f"Tessera base URL (default {DEFAULTS['api_url']})")
    add("--api-key", help="collector API key (or env TESSERA_COLLECTOR_KEY)")
    add("--spool", help=f"spool database path (default {DEFAULTS['spool']})")
    add("--log", action="append", metavar="PATH", help="a gateway usage log to tail (repeatable)")
    add(
        "--endpoint",
        action="append",
        metavar="NAME=ORG=URL",
        help="a vLLM endpoint to scrape (repeatable); URL may be file:///path",
    )
    add("--window-seconds", type=int, help="window for scraped counters; divides 3600 (60)")
    add("--interval-seconds", type=float, help="seconds between polls and scrapes (15)")
    add("--source", help="CloudEvents source of scraped events and of logs without their own")
    add("--batch-size", type=int, help="events per POST (default 1000)")
    add("--health-port", type=int, help="serve /healthz and /metrics on this port")
    add("--once", action="store_true", help="poll and scrape once, deliver, and exit")
    add("--replay", metavar="DIR", help="replay recorded scrapes DIR/<endpoint>/<time>.prom, exit")
    add("--drain-timeout", type=float, help="seconds to keep sending before exiting (300)")
    add("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config: dict[str, Any] = load_document(args.config) or {} if args.config else {}
    cfg = {**DEFAULTS}
    if os.environ.get("TESSERA_API_URL"):
        cfg["api_url"] = os.environ["TESSERA_API_URL"]
    cfg.update({k.replace("-", "_"): v for k, v in config.items()})
    cfg.update(
        {
            k: v
            for k, v in vars(args).items()
            if v not in (None, False) and k not in ("log", "endpoint")
        }
    )
    setup_logging(cfg["log_level"])
    api_key = api_key_from(args.api_key, config)
    if not api_key:
        log.error("no API key: pass --api-key or set TESSERA_COLLECTOR_KEY")
        return 2
    logs = [dict(x) for x in cfg["logs"]] + [{"path": p} for p in args.log or []]
    endpoints = [Endpoint.from_config(dict(e)) for e in cfg["endpoints"]]
    for spec in args.endpoint or []:
        name, org, url = spec.split("=", 2)
        endpoints.append(Endpoint(name=name, org=org, url=url))
    telemetry = Telemetry("tokens")
    spool = Spool(Path(cfg["spool"]))
    tailers = [
        LogTailer(
            path=x["path"], source=x.get("source", cfg["source"]), spool=spool, telemetry=telemetry
        )
        for x in logs
    ]
    scraper = Scraper(
        endpoints=endpoints,
        spool=spool,
        telemetry=telemetry,
        window_seconds=int(cfg["window_seconds"]),
        source=cfg["source"],
    )
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
        "token collector: %d logs, %d endpoints, spool %s",
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
