"""The small JSON-path subset meters use: ``$.a.b`` — dotted object keys from the event's data."""

import re

from core.errors import DomainError, ErrorCode, ErrorKind

_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


class PathError(DomainError, ValueError):
    """A meter's JSON path outside the supported subset; the message says what is wrong."""

    codes = {"invalid_path": ErrorCode(ErrorKind.INVALID, "A JSON path outside `$.a.b`.")}

    def __init__(self, message: str) -> None:
        super().__init__("invalid_path", message)


def parse_path(path: str) -> tuple[str, ...]:
    """``$.a.b`` → ``("a", "b")``; anything else raises PathError naming what is wrong."""
    if not isinstance(path, str) or not path.startswith("$."):
        raise PathError(f"{path!r} must start with '$.' (e.g. '$.gpu_seconds')")
    keys = tuple(path[2:].split("."))
    for key in keys:
        if not _KEY.match(key) or "__" in key:
            raise PathError(
                f"{path!r}: key {key!r} may only hold letters, digits, '_' and '-' "
                "(no '__', no array indexes)"
            )
    return keys


def lookup(data: object, keys: tuple[str, ...]) -> tuple[bool, object]:
    """(found, value) for ``keys`` inside ``data``."""
    node = data
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def orm_lookup(field: str, keys: tuple[str, ...]) -> str:
    """The ORM lookup for a key path under a JSONField, for ``KT()``."""
    return "__".join((field, *keys))
