"""Small pieces both collectors share: clocks, time formatting, config files, logging."""

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml


class Clock(Protocol):
    def wall(self) -> float:
        """Unix seconds (UTC wall clock): where windows begin and end."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: how long to wait between samples."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class SimulatedClock:
    """A clock that only moves when told to; ``sleep`` moves it instead of waiting."""

    def __init__(self, start: float) -> None:
        self.now = float(start)
        self._mono = 0.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        self._mono += max(0.0, seconds)

    def set(self, moment: float) -> None:
        self.advance(moment - self.now)


def iso(moment: float | int | datetime) -> str:
    """RFC 3339 in UTC with a Z, whole seconds when there are no fractions."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_time(raw: Any) -> float:
    """An RFC 3339 string (timezone required), a datetime, or unix seconds → unix seconds."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, str):
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    else:
        raise ValueError(f"{raw!r} is not a time")
    if moment.tzinfo is None:
        raise ValueError(f"{raw!r} has no timezone; add 'Z' or an offset")
    return moment.timestamp()


def load_document(path: str | Path) -> Any:
    """A YAML or JSON file (JSON is YAML, but JSON errors read better from the JSON parser)."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        return json.loads(text)
    return yaml.safe_load(text)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def api_key_from(flag: str | None, config: dict[str, Any]) -> str | None:
    return flag or os.environ.get("TESSERA_COLLECTOR_KEY") or config.get("api_key")
