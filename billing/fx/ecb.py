"""Reading the ECB's euro foreign-exchange reference rates as published (SPEC §5).

Two shapes, both "Date" then one column per currency, each value the units of that currency
for 1 EUR, every line ending with a comma:
- ``eurofxref.csv`` (one day): ``Date, USD, JPY, ...`` then ``17 January 2025, 1.0300, ...``;
- ``eurofxref-hist.csv`` (every day since 1999): ``Date,USD,JPY,...`` then
  ``2025-01-17,1.03,161.04,...``, with ``N/A`` where a currency had no rate that day.
The zip files the ECB also offers hold these same CSV files.
"""

import csv
import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

_CURRENCY = re.compile(r"^[A-Z]{3}$")
MISSING = {"", "N/A", "NA", "-"}
# What ``FxRate.rate`` (max_digits=20, decimal_places=8) holds exactly: a rate with more decimal
# places would be rounded on save (so loading the file again would "update" it every time), a
# larger one is refused by PostgreSQL and unreadable afterwards on SQLite. The embedded SQLite
# database keeps 15 significant digits (a REAL; Django reads it back at 15), so a 16th would be
# lost there. ECB rates have at most 6 significant digits.
RATE_DECIMAL_PLACES = 8
RATE_INTEGER_DIGITS = 12
RATE_SIGNIFICANT_DIGITS = 15
_RATE_QUANTUM = Decimal(1).scaleb(-RATE_DECIMAL_PLACES)
_RATE_CEILING = Decimal(10) ** RATE_INTEGER_DIGITS


class EcbFileError(ValueError):
    """The file is not an ECB reference-rate CSV; ``errors`` name each line and column."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class EcbRate:
    date: date
    currency: str
    rate: Decimal  # units of currency for 1 EUR


def read_ecb_bytes(data: bytes) -> list[EcbRate]:
    """The rates of an ECB CSV (or the ECB's zip of one), UTF-8 text (SPEC §5). Raises
    ``EcbFileError`` naming every bad line, or saying why the bytes are not such a file (a
    corrupt zip, gzip, binary or non-UTF-8 data); nothing is returned then."""
    if data[:2] == b"PK":
        data = _the_csv_in_the_zip(data)
    if data[:2] == b"\x1f\x8b":
        raise EcbFileError(["a gzip file; unpack it first (the ECB publishes CSV or zip)"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EcbFileError(
            [f"byte {exc.start}: not UTF-8 text; an ECB rates CSV (or its zip) was expected"]
        ) from None
    return read_ecb_csv(text)


def _the_csv_in_the_zip(data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if len(names) != 1:
                raise EcbFileError([f"the zip holds {len(names)} CSV files; expected one"])
            return archive.read(names[0])
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression.
        raise EcbFileError([f"not a readable zip file ({exc})"]) from None


def _day(text: str) -> date:
    for shape in ("%Y-%m-%d", "%d %B %Y"):
        try:
            return datetime.strptime(text, shape).date()  # noqa: DTZ007 - a date, no time
        except ValueError:
            continue
    raise ValueError(text)


def read_ecb_csv(text: str) -> list[EcbRate]:
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text))]
    rows = [row for row in rows if any(row)]
    if not rows or not rows[0] or rows[0][0] != "Date":
        raise EcbFileError(["line 1: the header must start with 'Date' (an ECB rates CSV)"])
    header = rows[0]
    errors: list[str] = []
    columns: list[tuple[int, str]] = []
    named: set[str] = set()
    for index, name in enumerate(header[1:], start=1):
        if not name:
            continue  # the trailing comma of every ECB line
        if name == "EUR":
            errors.append(
                f"line 1, column {index + 1}: EUR is the base currency (rates are units per "
                "1 EUR) and cannot be a column"
            )
        elif not _CURRENCY.match(name):
            errors.append(f"line 1, column {index + 1}: {name!r} is not a currency code")
        elif name in named:
            errors.append(f"line 1, column {index + 1}: {name} appears twice in the header")
        named.add(name)
        columns.append((index, name))
    rates: list[EcbRate] = []
    seen: set[date] = set()
    for number, row in enumerate(rows[1:], start=2):
        try:
            day = _day(row[0])
        except ValueError:
            errors.append(
                f"line {number}: {row[0]!r} is not a date (YYYY-MM-DD or 17 January 2025)"
            )
            continue
        if day in seen:
            errors.append(f"line {number}: {day} appears twice")
        seen.add(day)
        for index, currency in columns:
            cell = row[index] if index < len(row) else ""
            if cell in MISSING:
                continue
            try:
                rate = Decimal(cell)
            except InvalidOperation:
                rate = Decimal(-1)
            if not rate.is_finite() or rate <= 0:
                errors.append(f"line {number}, {currency}: {cell!r} is not a positive rate")
                continue
            if rate >= _RATE_CEILING:
                errors.append(
                    f"line {number}, {currency}: {cell!r} does not fit "
                    f"{RATE_INTEGER_DIGITS} integer digits (it must be less than "
                    f"{_RATE_CEILING:f})"
                )
                continue
            if rate != rate.quantize(_RATE_QUANTUM):
                errors.append(
                    f"line {number}, {currency}: {cell!r} has more than "
                    f"{RATE_DECIMAL_PLACES} decimal places"
                )
                continue
            if len(rate.normalize().as_tuple().digits) > RATE_SIGNIFICANT_DIGITS:
                errors.append(
                    f"line {number}, {currency}: {cell!r} has more than "
                    f"{RATE_SIGNIFICANT_DIGITS} significant digits"
                )
                continue
            rates.append(EcbRate(day, currency, rate))
    if errors:
        raise EcbFileError(errors)
    if not rates:
        raise EcbFileError(["no rates in the file"])
    return rates
