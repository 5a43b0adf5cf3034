"""The one parser of the ISO 8601 dates and times Tessera accepts (SPEC §5: times are UTC).

Every API parameter, ingested event time, command option and task argument that is a moment
goes through ``parse_instant``; callers only word the error for their input. (The collectors
keep their own parser: they import nothing from the rest of Tessera.)
"""

from datetime import UTC, date, datetime, time


class NaiveTime(ValueError):
    """A datetime without a timezone where one is required."""


def parse_instant(raw: str, *, allow_date: bool = True, assume_utc: bool = False) -> datetime:
    """An aware UTC datetime from an ISO 8601 datetime with a timezone (RFC 3339) or, with
    ``allow_date``, a bare date ``YYYY-MM-DD`` (midnight UTC). With ``assume_utc`` a datetime
    without a timezone is taken as UTC (operators' command options); otherwise it is refused.

    Raises ``ValueError`` (``NaiveTime`` for a missing timezone) whose message names ``raw``
    and what is wrong."""
    try:
        if allow_date and len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(0), tzinfo=UTC)
        moment = datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        expected = "an ISO 8601 date or datetime" if allow_date else "an RFC 3339 timestamp"
        raise ValueError(f"{raw!r} is not {expected}") from None
    if moment.tzinfo is None:
        if not assume_utc:
            raise NaiveTime(f"{raw!r} has no timezone; add 'Z' or an offset")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def month_of(value: str) -> tuple[int, int]:
    """``YYYY-MM`` → (year, month); ValueError otherwise."""
    day = date.fromisoformat(f"{value}-01")
    return day.year, day.month


def month_start(value: str) -> date:
    """``YYYY-MM`` → the first day of that month; ValueError otherwise."""
    year, month = month_of(value)
    return date(year, month, 1)
