"""The one parser of the dates and times Tessera accepts (SPEC §3 event ``time``, §5: times
are UTC).

Every API parameter, ingested event time, command option and task argument that is a moment
goes through ``parse_instant``; callers only word the error for their input. (The collectors
keep their own parser: they import nothing from the rest of Tessera.)

Timestamps are RFC 3339 §5.6 ``date-time`` and nothing else: ``YYYY-MM-DDTHH:MM:SS[.frac]``
then ``Z`` or ``±HH:MM``; ``T`` and ``Z`` may be lower case (RFC 3339 §5.6 note). Refused: the
ISO 8601 forms RFC 3339 does not have (basic format ``20261129T051000Z``, week and ordinal
dates, missing seconds, an offset without its colon, a space for ``T``, non-ASCII digits), and
moments whose UTC time falls outside the years 1 to 9999 (``0001-01-01T00:30:00+01:00`` is in
year 0 in UTC: once an OverflowError, a 500). A leap second (``:60``) is refused: an aware
``datetime`` cannot hold it. Fractions beyond microseconds are truncated (PostgreSQL keeps
microseconds).
"""

import re
from datetime import UTC, date, datetime, time, timedelta, timezone

_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)


class TimeFormatError(ValueError):
    """Not a timestamp Tessera accepts, or not a representable one; the message says why."""


class NaiveTime(TimeFormatError):
    """A datetime without a UTC offset where one is required."""


def _quote(raw: str) -> str:
    return repr(raw) if len(raw) <= 64 else f"{raw[:61]!r}..."


def parse_instant(raw: str, *, allow_date: bool = True, assume_utc: bool = False) -> datetime:
    """An aware UTC datetime from an RFC 3339 timestamp or, with ``allow_date``, a calendar
    date ``YYYY-MM-DD`` (midnight UTC). With ``assume_utc`` a timestamp without an offset is
    taken as UTC (operators' command options); otherwise it is refused with ``NaiveTime``.

    Raises ``TimeFormatError`` (a ValueError) whose message names ``raw`` and what is wrong."""
    if not isinstance(raw, str):
        raise TimeFormatError(f"{raw!r} is not a string")
    if allow_date and (day := _DATE.fullmatch(raw)):
        try:
            return datetime.combine(date(*(int(g) for g in day.groups())), time(0), tzinfo=UTC)
        except ValueError as exc:
            raise TimeFormatError(f"{_quote(raw)} is not a valid date: {exc}") from None
    match = _DATE_TIME.fullmatch(raw)
    if match is None:
        expected = (
            "a date (YYYY-MM-DD) or an RFC 3339 timestamp"
            if allow_date
            else ("an RFC 3339 timestamp")
        )
        raise TimeFormatError(
            f"{_quote(raw)} is not {expected} (e.g. 2026-11-29T05:10:00Z or "
            "2026-11-29T06:10:00+01:00)"
        )
    fraction, offset = match.group(7), match.group(8)
    if offset == "Z" and match.group(6) != "60":
        # The common case (every collector writes UTC with "Z"): the C parser, which reads this
        # form as the code below does (fraction truncated to microseconds); anything it refuses
        # gets the careful path and its message.
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            pass
    year, month, day_of_month, hour, minute, second = (int(g) for g in match.groups()[:6])
    if offset is None and not assume_utc:
        raise NaiveTime(f"{_quote(raw)} has no UTC offset; add 'Z' or an offset such as +01:00")
    if second == 60:
        raise TimeFormatError(f"{_quote(raw)} is a leap second, which cannot be stored")
    zone = UTC
    if offset is not None and offset not in ("Z", "z"):
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise TimeFormatError(f"{_quote(raw)} has an invalid UTC offset {offset!r}")
        sign = -1 if offset[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        local = datetime(year, month, day_of_month, hour, minute, second, micro, tzinfo=zone)
        return local.astimezone(UTC)
    except ValueError as exc:
        raise TimeFormatError(f"{_quote(raw)} is not a valid date and time: {exc}") from None
    except OverflowError:
        raise TimeFormatError(f"{_quote(raw)} is outside the years 1 to 9999 in UTC") from None


def month_of(value: str) -> tuple[int, int]:
    """``YYYY-MM`` → (year, month); ValueError otherwise."""
    day = date.fromisoformat(f"{value}-01")
    return day.year, day.month


def month_start(value: str) -> date:
    """``YYYY-MM`` → the first day of that month; ValueError otherwise."""
    year, month = month_of(value)
    return date(year, month, 1)
