"""Numbers for people, in the org's locale (Babel, CLDR data): grouping, decimal mark and
the currency's symbol and minor units. Files (CSV) keep machine formats: see ``csv_*``."""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal, format_percent

from billing.money import minor_units

DEFAULT_LOCALE = "en_US"


def org_locale(country: str) -> str:
    """The most likely locale of a country (CLDR likely subtags): FR → fr_FR, JP → ja_JP."""
    try:
        return str(Locale.parse(f"und_{country.upper()}"))
    except (UnknownLocaleError, ValueError):
        return DEFAULT_LOCALE


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@dataclass(frozen=True)
class Numbers:
    """Formats one org's numbers: ``Numbers(org_locale(org.country), currency)``."""

    locale: str
    currency: str

    def money(self, value: Any) -> str:
        """1234.5 USD → '1,234.50 $' (en_US), '1 234,50 $US' (fr_FR); JPY without decimals."""
        number = _decimal(value)
        if number is None:
            return "—"
        return format_currency(number, self.currency, locale=self.locale)

    def price(self, value: Any) -> str:
        """A unit price: the currency's decimals at least, more when the price has them
        (a token costs a fraction of a cent): 0.855 USD → '$0.855', 2.1 → '$2.10'."""
        number = _decimal(value)
        if number is None:
            return "—"
        return format_currency(
            number.normalize(), self.currency, locale=self.locale, decimal_quantization=False
        )

    def quantity(self, value: Any) -> str:
        """Grouped, with sensible decimals: 2 from 1 up (4,588 · 299.14), up to 4 below."""
        number = _decimal(value)
        if number is None:
            return "—"
        pattern = "#,##0.##" if abs(number) >= 1 or number == 0 else "#,##0.####"
        return format_decimal(number, format=pattern, locale=self.locale)

    def percent(self, value: Any) -> str:
        """A percentage given in percent: 4.17 → '4.17%' (en), '4,17 %' (fr)."""
        number = _decimal(value)
        if number is None:
            return "—"
        fraction = (number / 100).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        return format_percent(fraction.normalize(), locale=self.locale, decimal_quantization=False)

    def axis(self, value: float) -> str:
        """Chart axis labels: grouped, at most 2 decimals."""
        return format_decimal(value, format="#,##0.##", locale=self.locale)


def csv_quantity(value: Decimal) -> str:
    """A quantity in a file: at most 6 decimals (the precision SPEC §7 keeps), no trailing
    zeros, dot decimal mark, no grouping: 10.28571428666… → 10.285714."""
    text = f"{value.quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def csv_amount(value: Decimal, currency: str) -> str:
    """An amount in a file with the currency's minor-unit decimals: 12.3 USD → 12.30."""
    return f"{value:.{minor_units(currency)}f}"
