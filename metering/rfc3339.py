"""The one parser for timestamps that come from outside: RFC 3339 ``date-time``, nothing else.

RFC 3339 §5.6: ``YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)``. ``T`` and ``Z`` may be lower case
(§5.6, note on case). Refused: ISO 8601 forms RFC 3339 does not have (basic format
``20261129T051000Z``, week and ordinal dates, missing seconds, offsets without a colon, a
space instead of ``T``), no offset at all, and moments whose UTC time falls outside the
years 1–9999 (``0001-01-01T00:30:00+01:00`` is year 0 in UTC). A leap second (``:60``) is
refused: UTC timestamps here cannot represent it. Fractions beyond microseconds are
truncated (PostgreSQL keeps microseconds).

Used by ingestion (the event's ``time``), the usage API's ``start``/``end`` and the
allocation API, so every door reads time the same way and none can fail with a 500.
"""

import re
from datetime import UTC, date, datetime, time, timedelta, timezone

_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_NO_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?", re.ASCII)


def _quote(raw: str) -> str:
    return repr(raw) if len(raw) <= 64 else f"{raw[:61]!r}..."


class TimeFormatError(ValueError):
    """The text is not an RFC 3339 timestamp (or not a representable one); says why."""


def parse_rfc3339(raw: str) -> datetime:
    """``raw`` as an aware UTC datetime; raises TimeFormatError naming the problem."""
    match = _DATE_TIME.fullmatch(raw)
    if match is None and _NO_OFFSET.fullmatch(raw):
        raise TimeFormatError(
            f"{_quote(raw)} has no UTC offset; add 'Z' or an offset such as +01:00"
        )
    if match is None:
        raise TimeFormatError(
            f"{_quote(raw)} is not an RFC 3339 timestamp (e.g. 2026-11-29T05:10:00Z or "
            "2026-11-29T06:10:00+01:00)"
        )
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    if second == 60:
        raise TimeFormatError(f"{_quote(raw)} is a leap second, which cannot be stored")
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = UTC
    if offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise TimeFormatError(f"{_quote(raw)} has an invalid UTC offset {offset!r}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        return local.astimezone(UTC)
    except ValueError as exc:
        raise TimeFormatError(f"{_quote(raw)} is not a valid date and time: {exc}") from None
    except OverflowError:
        raise TimeFormatError(f"{_quote(raw)} is outside the years 1 to 9999 in UTC") from None


def parse_date_or_rfc3339(raw: str) -> datetime:
    """A calendar date ``YYYY-MM-DD`` (midnight UTC) or an RFC 3339 timestamp, in UTC."""
    match = _DATE.fullmatch(raw)
    if match is None:
        return parse_rfc3339(raw)
    try:
        return datetime.combine(date(*(int(g) for g in match.groups())), time(0), tzinfo=UTC)
    except ValueError as exc:
        raise TimeFormatError(f"{_quote(raw)} is not a valid date: {exc}") from None
