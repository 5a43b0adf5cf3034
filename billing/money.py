"""Money rounding: the one place that knows currencies' minor units (SPEC §7).

Amounts are rounded once, per invoice line, with a named rounding mode (half-up unless the
issuer says otherwise). Unit prices and quantities are never rounded to the minor unit.
"""

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

# ISO 4217 minor units where they differ from 2.
_MINOR_UNITS = {
    "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "XAF": 0, "XOF": 0, "UGX": 0,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3,
}  # fmt: skip
ROUNDING_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "down": ROUND_DOWN}
PRICE_PLACES = Decimal("1e-12")
QUANTITY_PLACES = Decimal("1e-12")


def minor_units(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit: USD/EUR 2, JPY 0."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def round_amount(amount: Decimal, currency: str, rounding: str = "half_up") -> Decimal:
    """``amount`` rounded to ``currency``'s minor unit with the named mode
    (``half_up`` | ``half_even`` | ``down``, as on ``Issuer.rounding``)."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUNDING_MODES[rounding])


def quantize_price(price: Decimal) -> Decimal:
    """A unit price at the stored 12 decimal places (half-up)."""
    return price.quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)


def quantize_quantity(quantity: Decimal) -> Decimal:
    """A quantity at the stored 12 decimal places (half-up)."""
    return quantity.quantize(QUANTITY_PLACES, rounding=ROUND_HALF_UP)
