"""The one timestamp parser every door uses (RFC 3339 §5.6)."""

from datetime import UTC, datetime

import pytest

from core.timeparse import NaiveTime, TimeFormatError, parse_instant


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-29T05:10:00Z", datetime(2026, 11, 29, 5, 10, tzinfo=UTC)),
        ("2026-11-29t05:10:00z", datetime(2026, 11, 29, 5, 10, tzinfo=UTC)),
        ("2026-11-29T06:10:00+01:00", datetime(2026, 11, 29, 5, 10, tzinfo=UTC)),
        ("2026-11-29T05:10:00-00:00", datetime(2026, 11, 29, 5, 10, tzinfo=UTC)),
        ("2026-11-29T05:10:00.5Z", datetime(2026, 11, 29, 5, 10, 0, 500000, tzinfo=UTC)),
        ("2026-11-29T05:10:00.1234569Z", datetime(2026, 11, 29, 5, 10, 0, 123456, tzinfo=UTC)),
        ("0001-01-01T00:30:00-01:00", datetime(1, 1, 1, 1, 30, tzinfo=UTC)),
        ("9999-12-31T23:59:59+01:00", datetime(9999, 12, 31, 22, 59, 59, tzinfo=UTC)),
    ],
)
def test_rfc_3339_timestamps_are_read_in_utc(raw, expected):
    assert parse_instant(raw, allow_date=False) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "20261129T051000Z",
        "2026-W48-7T05:10:00Z",
        "2026-333T05:10:00Z",
        "2026-11-29T05:10Z",
        "2026-11-29T05:10:00",
        "2026-11-29 05:10:00Z",
        "2026-11-29T05:10:00+01",
        "2026-11-29T05:10:00+0100",
        "2026-11-29T05:10:00+24:00",
        "2026-11-29T05:10:60Z",
        "2026-02-30T05:10:00Z",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "2026-11-29T05:10:00Z\n",
        "２０２６-11-29T05:10:00Z",
        "",
    ],
)
def test_anything_else_is_a_time_format_error(raw):
    with pytest.raises(TimeFormatError):
        parse_instant(raw, allow_date=False)


def test_a_date_is_midnight_utc_and_a_bad_one_is_refused():
    assert parse_instant("2026-11-29") == datetime(2026, 11, 29, tzinfo=UTC)
    with pytest.raises(TimeFormatError):
        parse_instant("2026-02-30")
    with pytest.raises(TimeFormatError):
        parse_instant("2026-11-29", allow_date=False)


def test_a_missing_offset_is_refused_unless_utc_is_assumed():
    with pytest.raises(NaiveTime):
        parse_instant("2026-11-29T05:10:00")
    assert parse_instant("2026-11-29T05:10:00", assume_utc=True) == datetime(
        2026, 11, 29, 5, 10, tzinfo=UTC
    )


@pytest.mark.parametrize("command", ["rate", "close_periods", "finalize_invoices"])
def test_commands_read_as_of_through_the_same_parser(db, command):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="outside the years 1 to 9999"):
        call_command(command, "--as-of", "0001-01-01T00:00:00+01:00")
