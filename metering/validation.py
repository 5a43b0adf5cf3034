"""What an accepted usage event may hold: SPEC §3 "Accepted means billable".

Every rule here exists because a later step needs it; a value that passes can never make
the insert, the rollup, a usage read or rating fail:

- **Quantities** (the value a `sum`, `max` or `latest` meter reads): a JSON number or a string
  in the ASCII decimal grammar ``[+-]digits[.digits][(e|E)[+-]digits]`` (a subset of what
  PostgreSQL's ``numeric`` input takes: no ``1_000``, no full-width or other non-ASCII digits,
  no spaces, no ``NaN``/``Infinity``). At most ``QUANTITY_PLACES`` (12) decimal places as
  written (the rollup casts to ``numeric(38, 12)``, which would round more), and
  ``|value| < 10^15`` (``QUANTITY_LIMIT``). Negative only where the meter allows it.
  Why 10^15: an hourly rollup is ``numeric(38, 12)``, so it holds sums below 10^26; at
  10^15 per event that takes 10^11 events of one org, meter and dimension set in one hour,
  three orders of magnitude above the ingestion rate of a whole deployment. Rating and
  invoice lines then work in ``Decimal`` with 28 significant digits and store quantities as
  ``numeric(30, 12)`` and amounts as ``numeric(20, 4)``: exact for any period quantity below
  10^16 billing units (ten events at this bound on a product of unit size 1).
- **Every other JSON number** anywhere in the event: at most 1000 decimal places and
  magnitude below 10^1001, so that PostgreSQL's ``jsonb`` can store it. Numbers are read as
  ``Decimal``, never through a binary float.
- **Strings** anywhere (keys too): valid Unicode (no lone surrogate such as ``"\\ud800"``)
  and no NUL; neither can be stored as text or ``jsonb``.
- **Nesting**: at most ``MAX_DEPTH`` (32) levels, the event object being level 1.
- **Lengths**, in characters as PostgreSQL stores them (``varchar(n)`` counts characters):
  ``id`` and ``source`` ≤ 255, ``type`` ≤ 128, ``subject`` ≤ 255; each group-by dimension
  value ≤ 256 and each value of a ``unique_count`` meter ≤ 512, measured as the text the
  rollup reads (``data->>'key'``: a string as is, a number in plain notation).
- **Dimensions**: every group-by dimension of every meter of the event's type present, not
  null, and a string, number or boolean.

Each refusal is a ``Problem``: the field (``id``, ``time``, ``data.gpu_seconds``...), a
stable ``code`` from ``CODES`` and a message for a person.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any

import msgspec

MAX_DEPTH = 32
MAX_ID_CHARS = 255
MAX_TYPE_CHARS = 128
MAX_SUBJECT_CHARS = 255
MAX_DIMENSION_CHARS = 256
MAX_UNIQUE_VALUE_CHARS = 512
QUANTITY_PLACES = 12
QUANTITY_LIMIT = Decimal(10) ** 15
# Any JSON number: PostgreSQL's numeric takes 131,072 digits before the point and 16,383 after;
# far less is ever meaningful, and the bound keeps every later cast cheap.
NUMBER_EXPONENT_LIMIT = 1000

# The stable refusal codes (SPEC §5), documented in the OpenAPI schema and the README.
CODES: dict[str, str] = {
    "required": "A required attribute, or the value a meter reads, is missing.",
    "invalid_type": "The JSON type is wrong (e.g. a number where a string is required).",
    "empty": "A string attribute is empty or blank.",
    "invalid_specversion": "specversion is not '1.0'.",
    "invalid_content_type": "datacontenttype (or the binary mode's Content-Type) is not "
    "application/json.",
    "invalid_time": "time is not an RFC 3339 timestamp with an offset, or not a representable one.",
    "too_old": "time is older than the late window (TESSERA_LATE_WINDOW_DAYS).",
    "in_future": "time is more than the allowed clock skew in the future.",
    "unknown_type": "No meter measures this event type.",
    "unknown_subject": "subject is not a known org.",
    "forbidden_subject": "An org's key reported usage for another org.",
    "invalid_decimal": "A quantity is not an ASCII decimal (no '1_000', no full-width digits, "
    "no NaN or Infinity).",
    "out_of_range": "A number is beyond its documented bound (quantities: |value| < 10^15).",
    "too_precise": "A quantity has more than 12 decimal places.",
    "negative_not_allowed": "A negative quantity for a meter that does not allow negatives.",
    "missing_dimension": "A group-by dimension of the meter is missing or null.",
    "invalid_dimension": "A dimension value is an object or an array.",
    "too_long": "A string is longer than its documented maximum, measured as stored.",
    "invalid_unicode": "A string holds a lone surrogate (not valid Unicode).",
    "nul_character": "A string holds a NUL character.",
    "too_deep": "The event nests deeper than 32 levels.",
    "id_conflict": "(source, id) was already used with other content.",
}

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_PLAIN_QUANTITY = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,12})?", re.ASCII)
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Problem:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class BadNumber:
    """A JSON number that ``Decimal`` cannot hold (an exponent beyond its range).

    Deliberately not a dataclass: msgspec writes a dataclass as a JSON object
    (``{"text": ...}``), so ``_fast`` would vouch for an event holding one; a plain class is
    refused by the encoder, and the walk reports ``out_of_range``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"BadNumber(text={self.text!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is BadNumber and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def json_number(text: str) -> Decimal | BadNumber:
    """``parse_float``/``parse_int`` hook: a JSON number as an exact Decimal."""
    try:
        return Decimal(text)
    except InvalidOperation:
        return BadNumber(text)


def show(value: Any) -> str:
    """``repr(value)`` cut to 80 characters, for messages (escapes NUL and surrogates)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def string_problem(text: str, field: str) -> Problem | None:
    """A lone surrogate or a NUL in ``text``, if any."""
    bad = _BAD_CHAR.search(text)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return Problem(field, "nul_character", f"{field} must not contain NUL characters")
    return Problem(
        field,
        "invalid_unicode",
        f"{field} holds a lone surrogate U+{ord(bad.group()):04X}, which is not valid Unicode",
    )


def _number_text(number: Decimal, field: str, problems: list[Problem]) -> str:
    if not number.is_finite():
        problems.append(Problem(field, "out_of_range", f"{field} must be a finite number"))
        return "0"
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -NUMBER_EXPONENT_LIMIT or number.adjusted() > NUMBER_EXPONENT_LIMIT:
        problems.append(
            Problem(
                field,
                "out_of_range",
                f"{field} is out of range: numbers may have at most {NUMBER_EXPONENT_LIMIT} "
                f"decimal places and must be below 10^{NUMBER_EXPONENT_LIMIT + 1}",
            )
        )
    return str(number)


# Canonical JSON in C: keys sorted by code point, no spaces, Decimals as their digits (what
# ``_walk`` writes), strings escaped as ``json.dumps(..., ensure_ascii=False)`` escapes them.
_CANONICAL = msgspec.json.Encoder(decimal_format="number", order="sorted")
# An exponent of three digits or more, as ``str(Decimal)`` writes one: the only way a number
# written in fewer than 900 digits can be beyond NUMBER_EXPONENT_LIMIT (see ``_fast``).
_LONG_EXPONENT = re.compile(rb"E[+-]?[0-9]{3}")
_DIGITS = b"0123456789"


def _fast(node: Any, containers: int) -> str | None:
    """Canonical JSON through a C encoder (msgspec), or None when ``node`` needs a closer
    look by ``_walk``: the common case costs about a microsecond instead of a walk in Python
    (issue 18: ``json.dumps`` with a hook per number cost ten).

    None is returned, conservatively, for: a value that is not JSON (the encoder refuses it),
    a non-finite Decimal or a key that is not a string (refused too), a lone surrogate (it
    cannot be encoded as UTF-8), a NUL (written ``\\u0000``), more containers than
    ``containers`` (a bound on the depth), and any number that could be out of bounds. A number
    is out of bounds with more than NUMBER_EXPONENT_LIMIT places or at 10^1001 and beyond; as
    ``str(Decimal)`` writes it, that takes either an exponent of three digits or more, or over
    900 digits (the plain form needs more than 1,000; the scientific form, e.g.
    ``1.23...E-50``, more than 1,001 minus its two-digit exponent). Strings that happen to hold
    such text only cost the walk."""
    try:
        raw = _CANONICAL.encode(node)
    except (TypeError, ValueError, msgspec.EncodeError):  # ValueError: UnicodeEncodeError
        return None
    if (
        b"\\u0000" in raw
        or raw.count(b"{") + raw.count(b"[") > containers
        or (b"E" in raw and _LONG_EXPONENT.search(raw))
        or (len(raw) > 900 and len(raw) - len(raw.translate(None, _DIGITS)) > 900)
    ):
        return None
    return raw.decode()


def plain_json(node: Any, depth: int = 1) -> str | None:
    """The canonical JSON of a dict or list at ``depth`` (the event is level 1) when nothing in
    it needs a closer look, exactly as ``encode`` would write it; None otherwise (``encode``
    then finds the problems, if any). Ingestion's fast path (issue 18)."""
    if type(node) is dict or type(node) is list:
        return _fast(node, MAX_DEPTH - depth + 1)
    return None


def encode(node: Any, field: str, problems: list[Problem], depth: int = 1) -> str:
    """Canonical JSON of ``node`` (sorted keys, no spaces, numbers as written), checking on the
    way every string, key and number and the nesting depth; problems are appended."""
    text = plain_json(node, depth)
    return text if text is not None else _walk(node, field, problems, depth)


def _walk(node: Any, field: str, problems: list[Problem], depth: int) -> str:
    kind = type(node)
    if kind is str:
        problem = string_problem(node, field)
        if problem:
            problems.append(problem)
            return '""'
        return encode_basestring(node)
    if kind is dict:
        if depth > MAX_DEPTH:
            problems.append(_too_deep(field))
            return "{}"
        parts = []
        for key in sorted(node, key=_sort_key):
            where = f"{field}.{key}" if field else str(key)
            if type(key) is not str:
                problems.append(Problem(where, "invalid_type", f"{where}: keys must be strings"))
                continue
            problem = string_problem(key, f"{field or 'event'} key {show(key)}")
            if problem:
                problems.append(problem)
                continue
            value = _walk(node[key], where, problems, depth + 1)
            parts.append(f"{encode_basestring(key)}:{value}")
        return "{" + ",".join(parts) + "}"
    if kind is list:
        if depth > MAX_DEPTH:
            problems.append(_too_deep(field))
            return "[]"
        items = (_walk(item, f"{field}[{i}]", problems, depth + 1) for i, item in enumerate(node))
        return "[" + ",".join(items) + "]"
    if node is None:
        return "null"
    if node is True:
        return "true"
    if node is False:
        return "false"
    if kind is Decimal:
        return _number_text(node, field, problems)
    if kind is int:
        return _number_text(Decimal(node), field, problems)
    if kind is float:
        return _number_text(Decimal(repr(node)), field, problems)
    if kind is BadNumber:
        problems.append(
            Problem(field, "out_of_range", f"{field} {show(node.text)} is out of range")
        )
        return "0"
    if kind is TooDeep:
        problems.append(_too_deep(field))
        return "null"
    problems.append(Problem(field, "invalid_type", f"{field} is not a JSON value"))
    return "null"


def _sort_key(key: Any) -> str:
    return key if type(key) is str else repr(key)


def _too_deep(field: str) -> Problem:
    return Problem(
        field or "event",
        "too_deep",
        f"{field or 'the event'} nests deeper than {MAX_DEPTH} levels",
    )


class TooDeep:
    """Stands in for a JSON value the parser could not read because it nests too deep."""

    def __repr__(self) -> str:
        return "TooDeep()"


TOO_DEEP = TooDeep()


def quantity(
    value: Any, field: str, *, allow_negative: bool
) -> tuple[Decimal | None, Problem | None]:
    """A meter's value as an exact Decimal within the documented bounds, or the problem."""
    if type(value) is str and _PLAIN_QUANTITY.fullmatch(value):
        # The usual form, within every bound by its shape: no sign, at most 15 digits before
        # the point (so below 10^15) and 12 after.
        return Decimal(value), None
    return _quantity_checked(value, field, allow_negative=allow_negative)


def _quantity_checked(
    value: Any, field: str, *, allow_negative: bool
) -> tuple[Decimal | None, Problem | None]:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str | BadNumber):
        return None, Problem(field, "invalid_type", f"{field} must be a number or a decimal string")
    if isinstance(value, BadNumber):
        return None, Problem(field, "out_of_range", f"{field} {show(value.text)} is out of range")
    if isinstance(value, str):
        if _DECIMAL.fullmatch(value) is None:
            return None, Problem(
                field,
                "invalid_decimal",
                f"{field} {show(value)} is not a number: use ASCII digits, an optional sign, "
                "decimal point and exponent (e.g. '3600' or '0.5')",
            )
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None, Problem(field, "out_of_range", f"{field} {show(value)} is out of range")
    elif isinstance(value, float):
        number = Decimal(repr(value))
    else:
        number = Decimal(value)
    if not number.is_finite():
        return None, Problem(field, "out_of_range", f"{field} must be finite")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    # The exponent first, and copy_abs (exact, no context): abs() rounds to the context and
    # raises decimal.Overflow past its Emax, e.g. for 1e2147483648.
    if number.adjusted() > NUMBER_EXPONENT_LIMIT or number.copy_abs() >= QUANTITY_LIMIT:
        return None, Problem(
            field, "out_of_range", f"{field} is out of range (|value| must be below 10^15)"
        )
    if exponent < -QUANTITY_PLACES:
        return None, Problem(
            field,
            "too_precise",
            f"{field} has more than {QUANTITY_PLACES} decimal places",
        )
    if number < 0 and not allow_negative:
        return None, Problem(
            field, "negative_not_allowed", f"{field} must not be negative for this meter"
        )
    return number, None


def stored_text(value: Any) -> str | None:
    """The text the rollup reads for a scalar (``data->>'key'``); None for objects/arrays."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal | int):
        return f"{Decimal(value):f}"
    if isinstance(value, float):
        return f"{Decimal(repr(value)):f}"
    return None
