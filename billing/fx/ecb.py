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
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

_CURRENCY = re.compile(r"^[A-Z]{3}$")
MISSING = {"", "N/A", "NA", "-"}


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
    """The rates of an ECB CSV (or the ECB's zip of one). Raises ``EcbFileError`` naming
    every bad line; nothing is returned then."""
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if len(names) != 1:
                raise EcbFileError([f"the zip holds {len(names)} CSV files; expected one"])
            data = archive.read(names[0])
    return read_ecb_csv(data.decode("utf-8-sig"))


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
    for index, name in enumerate(header[1:], start=1):
        if not name:
            continue  # the trailing comma of every ECB line
        if not _CURRENCY.match(name) or name == "EUR":
            errors.append(f"line 1, column {index + 1}: {name!r} is not a currency code")
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
            rates.append(EcbRate(day, currency, rate))
    if errors:
        raise EcbFileError(errors)
    if not rates:
        raise EcbFileError(["no rates in the file"])
    return rates
