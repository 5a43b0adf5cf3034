"""ECB reference rates: ``load_fx_rates FILE`` as the ECB publishes them (SPEC §5), and the
conversion an invoice states its VAT at (art. 230 Directive 2006/112/EC)."""

import io
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from billing.fx.models import FxRate
from billing.fx.selectors import FxRateMissing, conversion_on

# eurofxref.csv as the ECB publishes it: spaces after commas, a long date, a trailing comma.
DAILY = (
    "Date, USD, JPY, BGN, CZK, DKK, GBP, HUF, PLN, \n"
    "30 October 2026, 1.0832, 162.31, 1.9558, 25.301, 7.4589, 0.84210, 405.10, 4.3215, \n"
)
# eurofxref-hist.csv: ISO dates, newest first, N/A where a currency had no rate.
HISTORY = (
    "Date,USD,JPY,CYP,DKK,\n"
    "2026-11-03,1.0850,163.00,N/A,7.4600,\n"
    "2026-11-02,1.0840,162.90,N/A,7.4595,\n"
    "2026-10-30,1.0832,162.31,N/A,7.4589,\n"
)


def _load(tmp_path: Path, text: str, name: str = "eurofxref-hist.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    out = io.StringIO()
    call_command("load_fx_rates", str(path), stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_the_daily_file_as_published(tmp_path):
    output = _load(tmp_path, DAILY, "eurofxref.csv")

    assert "8 currencies from 2026-10-30 to 2026-10-30: 8 created" in output
    assert FxRate.objects.get(currency="USD", date=date(2026, 10, 30)).rate == Decimal("1.0832")
    assert FxRate.objects.get(currency="GBP").rate == Decimal("0.84210")


@pytest.mark.django_db
def test_the_history_file_skips_na_and_loading_twice_changes_nothing(tmp_path):
    first = _load(tmp_path, HISTORY)
    second = _load(tmp_path, HISTORY)

    assert "9 created" in first
    assert "0 created, 0 updated, 9 unchanged" in second
    assert not FxRate.objects.filter(currency="CYP").exists()


@pytest.mark.django_db
def test_the_ecb_zip_is_read_too(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("eurofxref-hist.csv", HISTORY)
    path = tmp_path / "eurofxref-hist.zip"
    path.write_bytes(buffer.getvalue())

    call_command("load_fx_rates", str(path), stdout=io.StringIO())

    assert FxRate.objects.count() == 9


@pytest.mark.django_db
def test_a_bad_file_names_each_bad_line_and_writes_nothing(tmp_path):
    bad = HISTORY + "2026-10-29,abc,162.0,N/A,-1,\nyesterday,1.0,1.0,1.0,1.0,\n"
    path = tmp_path / "bad.csv"
    path.write_text(bad)
    err = io.StringIO()

    with pytest.raises(CommandError, match="3 error"):
        call_command("load_fx_rates", str(path), stdout=io.StringIO(), stderr=err)

    assert "line 5, USD: 'abc' is not a positive rate" in err.getvalue()
    assert "line 5, DKK: '-1' is not a positive rate" in err.getvalue()
    assert "line 6: 'yesterday' is not a date" in err.getvalue()
    assert FxRate.objects.count() == 0


@pytest.mark.django_db
def test_the_latest_rate_on_or_before_the_day_and_cross_rates(tmp_path):
    _load(tmp_path, HISTORY)

    on_sunday = conversion_on(
        from_currency="USD", to_currency="EUR", day=date(2026, 11, 1), max_age_days=7
    )
    cross = conversion_on(
        from_currency="USD", to_currency="DKK", day=date(2026, 11, 3), max_age_days=7
    )

    assert (on_sunday.rate, on_sunday.day) == (Decimal("1.0832"), date(2026, 10, 30))
    assert on_sunday.convert(Decimal("108.32")) == Decimal("100")
    # 1 DKK = 1.0850 / 7.4600 USD, through the euro
    assert (cross.rate, cross.day) == (Decimal("0.1454423592"), date(2026, 11, 3))


@pytest.mark.django_db
def test_no_rate_or_a_stale_one_is_refused(tmp_path):
    _load(tmp_path, HISTORY)

    with pytest.raises(FxRateMissing, match="No ECB reference rate for USD"):
        conversion_on(from_currency="USD", to_currency="EUR", day=date(2026, 10, 29),
                      max_age_days=7)  # fmt: skip
    with pytest.raises(FxRateMissing, match="load_fx_rates"):
        conversion_on(from_currency="USD", to_currency="EUR", day=date(2026, 11, 20),
                      max_age_days=7)  # fmt: skip
    with pytest.raises(FxRateMissing, match="KWD"):
        conversion_on(from_currency="KWD", to_currency="EUR", day=date(2026, 11, 3),
                      max_age_days=7)  # fmt: skip


def test_the_example_file_is_an_ecb_history_file():
    from billing.fx.ecb import read_ecb_bytes

    path = Path(__file__).resolve().parents[3] / "examples" / "eurofxref-hist.csv"
    rates = read_ecb_bytes(path.read_bytes())

    assert {r.currency for r in rates} >= {"USD", "JPY", "GBP", "CHF", "DKK"}


def _refused(path: Path) -> str:
    """Run the command on ``path`` as a user would; the stderr lines and the final message."""
    err = io.StringIO()
    with pytest.raises(CommandError) as refusal:
        call_command("load_fx_rates", str(path), stdout=io.StringIO(), stderr=err)
    return f"{err.getvalue()}\n{refusal.value}"


# A good line first: the whole file is refused, so nothing at all is written.
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cell", "says"),
    [
        (
            "1e30",
            "line 3, USD: '1e30' does not fit 12 integer digits "
            "(it must be less than 1000000000000)",
        ),
        ("1e400", "line 3, USD: '1e400' does not fit 12 integer digits"),
        ("1000000000000", "line 3, USD: '1000000000000' does not fit 12 integer digits"),
        (
            "1.123456789012345678",
            "line 3, USD: '1.123456789012345678' has more than 8 decimal places",
        ),
        ("1e-9", "line 3, USD: '1e-9' has more than 8 decimal places"),
        # SQLite keeps 15 significant digits: this one would read back as 33554431.1234568.
        (
            "33554431.12345678",
            "line 3, USD: '33554431.12345678' has more than 15 significant digits",
        ),
        (
            "999999999999.99999999",
            "line 3, USD: '999999999999.99999999' has more than 15 significant digits",
        ),
    ],
)
def test_a_rate_the_database_cannot_hold_exactly_is_refused(tmp_path, cell, says):
    path = tmp_path / "big.csv"
    path.write_text(f"Date,USD,\n2026-11-03,1.0850,\n2026-11-02,{cell},\n")

    message = _refused(path)

    assert says in message
    assert "1 error(s) in" in message
    assert "nothing was written" in message
    assert FxRate.objects.count() == 0


@pytest.mark.django_db
def test_the_largest_and_finest_rates_it_holds_load_and_reload_unchanged(tmp_path):
    # 12 integer digits, 8 decimal places and 15 significant digits, each at its limit.
    text = (
        "Date,USD,JPY,HUF,PLN,\n"
        "2026-11-02,999999999999,0.00000001,12345.12345678,999999999999.999,\n"
    )

    first = _load(tmp_path, text)
    second = _load(tmp_path, text)

    assert "4 created" in first
    assert "0 created, 0 updated, 4 unchanged" in second
    assert FxRate.objects.get(currency="USD").rate == Decimal("999999999999")
    assert FxRate.objects.get(currency="JPY").rate == Decimal("0.00000001")
    assert FxRate.objects.get(currency="HUF").rate == Decimal("12345.12345678")
    assert FxRate.objects.get(currency="PLN").rate == Decimal("999999999999.999")


def _corrupt_zip(tmp_path: Path) -> Path:
    path = tmp_path / "eurofxref-hist.zip"
    path.write_bytes(b"PK\x03\x04garbage")
    return path


def _gzip(tmp_path: Path) -> Path:
    import gzip

    path = tmp_path / "eurofxref-hist.csv.gz"
    path.write_bytes(gzip.compress(HISTORY.encode()))
    return path


def _latin1(tmp_path: Path) -> Path:
    path = tmp_path / "eurofxref-hist.csv"
    path.write_bytes("Date,USD,\n2026-11-02,1.08,\n# Kurs für\n".encode("latin-1"))
    return path


def _binary(tmp_path: Path) -> Path:
    path = tmp_path / "rates.bin"
    path.write_bytes(bytes(range(256)))
    return path


def _zipped_binary(tmp_path: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("eurofxref-hist.csv", bytes(range(256)))
    path = tmp_path / "eurofxref-hist.zip"
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda tmp: tmp, "is a directory"),
        (_corrupt_zip, "not a readable zip file"),
        (_gzip, "a gzip file; unpack it first"),
        (_latin1, "byte 35: not UTF-8 text"),
        (_binary, "byte 128: not UTF-8 text"),
        (_zipped_binary, "byte 128: not UTF-8 text"),
    ],
    ids=["directory", "corrupt-zip", "gzip", "latin-1", "binary", "binary-in-zip"],
)
def test_a_file_that_is_not_an_ecb_csv_is_a_clean_error_naming_it(tmp_path, make, says):
    path = make(tmp_path)

    message = _refused(path)

    assert says in message
    assert str(path) in message
    assert "Traceback" not in message
    assert FxRate.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "line", "says"),
    [
        (
            "Date,USD,USD,",
            "2026-11-02,1.1,1.2,",
            "line 1, column 3: USD appears twice in the header",
        ),
        (
            "Date,USD,EUR,",
            "2026-11-02,1.1,1,",
            "line 1, column 3: EUR is the base currency (rates are units per 1 EUR) "
            "and cannot be a column",
        ),
    ],
)
def test_a_header_that_cannot_be_read_one_way_is_refused(tmp_path, header, line, says):
    path = tmp_path / "eurofxref-hist.csv"
    path.write_text(f"{header}\n{line}\n")

    message = _refused(path)

    assert says in message
    assert "nothing was written" in message
    assert FxRate.objects.count() == 0
