"""Money rounding and display: the one place that knows currencies' minor units (SPEC §7).

Amounts are rounded once, per invoice line, with a named rounding mode (half-up unless the
issuer says otherwise). Unit prices and quantities are never rounded to the minor unit.
Minor units and formatting come from Babel (CLDR), not a table kept here: KWD has 3
decimals, JPY none, EUR and USD 2.
"""

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

from babel.numbers import format_currency, get_currency_precision

ROUNDING_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "down": ROUND_DOWN}
PRICE_PLACES = Decimal("1e-12")
QUANTITY_PLACES = Decimal("1e-12")
LOCALE = "en_US"


def minor_units(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit (CLDR): USD/EUR 2, JPY 0, KWD 3."""
    return int(get_currency_precision(currency.upper()))


def round_amount(amount: Decimal, currency: str, rounding: str = "half_up") -> Decimal:
    """``amount`` rounded to ``currency``'s minor unit with the named mode
    (``half_up`` | ``half_even`` | ``down``, as on ``Issuer.rounding``)."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUNDING_MODES[rounding])


def money_text(amount: Decimal, currency: str) -> str:
    """A plain decimal string at the currency's minor unit, as APIs and exports give amounts:
    "1.297" KWD, "1.30" USD, "1235" JPY (half-up)."""
    return f"{round_amount(amount, currency):f}"


def format_money(amount: Decimal, currency: str, *, symbol: bool = True) -> str:
    """``amount`` for a person, at the currency's minor unit with grouping: "€1,234.50",
    "¥12,345", "1,297.500 KWD" (Babel, en_US); ``symbol=False`` gives "1,234.50"."""
    amount = round_amount(amount, currency)
    if symbol:
        return str(format_currency(amount, currency.upper(), locale=LOCALE, currency_digits=True))
    return str(
        format_currency(
            amount, currency.upper(), format="#,##0.00", locale=LOCALE, currency_digits=True
        )
    )


def quantize_price(price: Decimal) -> Decimal:
    """A unit price at the stored 12 decimal places (half-up)."""
    return price.quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)


def quantize_quantity(quantity: Decimal) -> Decimal:
    """A quantity at the stored 12 decimal places (half-up)."""
    return quantity.quantize(QUANTITY_PLACES, rounding=ROUND_HALF_UP)
