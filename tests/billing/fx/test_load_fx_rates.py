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
