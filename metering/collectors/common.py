"""Small pieces both collectors share: clocks, time formatting, settings, logging."""

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import yaml

from . import __version__

ENV_PREFIX = "TESSERA_COLLECTOR_"


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


def decimal_text(value: Decimal | int) -> str:
    """A plain ASCII decimal: no exponent, no trailing zeros after the point ("25.714286", "60").

    What the ingestion API's decimal grammar accepts (SPEC §3, "Usage event")."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def load_document(path: str | Path) -> Any:
    """A YAML or JSON file (JSON is YAML, but JSON errors read better from the JSON parser)."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        return json.loads(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from exc


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


class ConfigError(Exception):
    """A setting is missing or wrong: the collector exits 2 with this message."""


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{raw!r} is not a boolean (true/false)")


def _words(raw: Any) -> list[str]:
    """A list from YAML, or from a flag or variable: comma- or space-separated words."""
    if isinstance(raw, list):
        return [str(x) for x in raw]
    return [w for w in str(raw).replace(",", " ").split() if w]


def _structured(raw: Any) -> Any:
    """A YAML value, or a flag or variable holding JSON (or a file path, handled by callers)."""
    if isinstance(raw, str) and raw.strip()[:1] in ("[", "{"):
        return json.loads(raw)
    return raw


PARSERS: dict[str, Callable[[Any], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": _boolean,
    "path": str,
    "words": _words,
    "json": _structured,
}


@dataclass(frozen=True)
class Setting:
    """One key, settable as ``--key-name`` (flag), ``TESSERA_COLLECTOR_KEY_NAME`` (environment)
    and ``key_name:`` (config file). Flags win over the environment, which wins over the file.
    A ``path`` from the config file is relative to the file; from a flag or variable, to the
    working directory."""

    name: str
    kind: str = "str"  # a key of PARSERS
    default: Any = None
    help: str = ""
    aliases: tuple[str, ...] = ()  # older environment variable names, still read
    repeat: bool = False  # the flag may be given several times (the values add up)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


COMMON_SETTINGS: tuple[Setting, ...] = (
    Setting("api_url", default="http://127.0.0.1:8000", help="Tessera base URL",
            aliases=("TESSERA_API_URL",)),
    Setting("api_key", help="collector API key (manage.py create_api_key --collector NAME)",
            aliases=("TESSERA_COLLECTOR_KEY",)),
    Setting("batch_size", "int", 1000, "events per POST (at most 10000)"),
    Setting("health_port", "int", None, "serve /healthz and /metrics on this port"),
    Setting("drain_timeout", "float", 300.0, "seconds to keep sending before giving up on exit"),
    Setting("log_level", default="INFO", help="DEBUG, INFO, WARNING or ERROR"),
)  # fmt: skip


def build_parser(
    prog: str, description: str, settings: Sequence[Setting]
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Every setting is also read from the environment (TESSERA_COLLECTOR_ and the name in "
            "capitals, e.g. TESSERA_COLLECTOR_API_URL) and from --config (the name with "
            "underscores). Flags win over the environment, which wins over the file. Paths in "
            "the file are relative to the file. Exit codes: 0 done, 1 could not do its job, "
            "2 bad settings."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config", help=f"YAML or JSON file with any of these settings (env {ENV_PREFIX}CONFIG)"
    )
    for setting in settings:
        default = (
            f" (default {setting.default})" if setting.default not in (None, [], False) else ""
        )
        env = f" [env {setting.env}]"
        if setting.kind == "bool":
            parser.add_argument(
                setting.flag,
                nargs="?",
                const="true",
                metavar="true|false",
                help=setting.help + default + env,
            )
        elif setting.repeat:
            parser.add_argument(setting.flag, action="append", help=setting.help + default + env)
        else:
            parser.add_argument(setting.flag, help=setting.help + default + env)
    return parser


def resolve_settings(
    args: argparse.Namespace,
    settings: Sequence[Setting],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Each setting from its flag, else its environment variable, else the config file, else its
    default; paths made absolute (see ``Setting``). Raises ConfigError naming the bad setting.

    ``_base`` in the result maps each setting to the folder its relative paths start from (the
    config file's, or the working directory), for paths inside structured settings."""
    env = os.environ if environ is None else environ
    config_path = args.config or env.get(ENV_PREFIX + "CONFIG")
    config: dict[str, Any] = {}
    base = Path.cwd()
    if config_path:
        try:
            config = load_document(config_path) or {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"config file {config_path}: {exc}") from exc
        if not isinstance(config, dict):
            raise ConfigError(f"config file {config_path}: expected a mapping of settings")
        config = {str(k).replace("-", "_"): v for k, v in config.items()}
        base = Path(config_path).resolve().parent
        known = {s.name for s in settings}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"config file {config_path}: unknown settings {unknown}")
    resolved: dict[str, Any] = {"_base": {}}
    for setting in settings:
        raw: Any = getattr(args, setting.name, None)
        where, relative_to = setting.flag, Path.cwd()
        if raw is not None and setting.repeat:
            raw = [w for item in raw for w in _words(item)] if setting.kind == "words" else raw
        if raw is None:
            for name in (setting.env, *setting.aliases):
                if env.get(name) not in (None, ""):
                    raw, where = env[name], name
                    break
        if raw is None and setting.name in config:
            raw, where, relative_to = config[setting.name], f"{setting.name} in the config", base
        resolved["_base"][setting.name] = str(relative_to)
        if raw is None:
            default = setting.default
            if setting.kind == "path" and default is not None:
                default = absolute(default, Path.cwd())
            resolved[setting.name] = default
            continue
        try:
            value = PARSERS[setting.kind](raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if setting.kind == "path":
            value = absolute(value, relative_to)
        resolved[setting.name] = value
    return resolved


def absolute(path: str, base: Path) -> str:
    """``path`` if absolute, else under ``base`` (a config file's folder, or the working dir)."""
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())
