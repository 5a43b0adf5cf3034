"""Strict JSON for request bodies that carry usage events.

UTF-8 only; no ``NaN``/``Infinity``; no duplicate keys; every number read as an exact
``Decimal`` (``123456789012.123456`` stays exact: SPEC §3, never a binary float).

Nesting: Python's parser recurses, so a body nesting about a thousand levels deep would fail
as a whole. When that happens the body is scanned once more without recursion and each
top-level element of a batch that nests deeper than ``PARSE_DEPTH`` is read as ``TOO_DEEP``
(a body that is one object becomes ``TOO_DEEP`` itself): ingestion then refuses that event
alone, with its index, and keeps the others. Shallower events are parsed as usual, and
validation refuses those deeper than ``MAX_DEPTH`` with the path where they are too deep.
"""

import json
import re
from typing import Any

from .validation import MAX_DEPTH, TOO_DEEP, json_number

# Deep enough for every event validation could accept, shallow enough for the recursive parser.
PARSE_DEPTH = 8 * MAX_DEPTH


class MalformedJson(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise MalformedJson(f"duplicate key {key!r} in a JSON object")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    return json.loads(
        text,
        object_pairs_hook=_no_duplicate_keys,
        parse_constant=_reject_constant,
        parse_float=json_number,
        parse_int=json_number,
    )


def parse_json(body: bytes) -> Any:
    """The body as JSON (see the module docstring). Raises UnicodeDecodeError for a body that
    is not UTF-8 and MalformedJson (a ValueError) for one that is not JSON."""
    text = body.decode("utf-8")
    try:
        return _loads(text)
    except RecursionError:
        pass
    except ValueError as exc:
        raise MalformedJson(str(exc)) from None
    neutralized, deep = _without_deep_elements(text)
    if deep is None:
        return TOO_DEEP
    try:
        payload = _loads(neutralized)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(str(exc)) from None
    if isinstance(payload, list):
        for index in deep:
            if index < len(payload):
                payload[index] = TOO_DEEP
    return payload


_TOKEN = re.compile(r'"(?:[^"\\]+|\\.)*"|[\[\]{},]')


def _without_deep_elements(text: str) -> tuple[str, set[int] | None]:
    """``text`` with each too-deep element of a top-level array replaced by ``null``, and the
    indexes replaced; ``(text, None)`` when the top level is not an array."""
    if not text.lstrip().startswith("["):
        return text, None
    depth = 0
    index = 0
    start = 0
    deepest = 0
    spans: list[tuple[int, int]] = []
    deep: set[int] = set()
    for token in _TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth == 2:
                start, deepest = token.start(), 2
            deepest = max(deepest, depth)
        elif char in "]}":
            if depth == 2 and deepest - 1 > PARSE_DEPTH:
                spans.append((start, token.end()))
                deep.add(index)
            depth -= 1
        elif char == "," and depth == 1:
            index += 1
    parts = []
    last = 0
    for begin, end in spans:
        parts.append(text[last:begin])
        parts.append("null")
        last = end
    parts.append(text[last:])
    return "".join(parts), deep
