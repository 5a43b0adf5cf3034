from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

register = template.Library()


@register.filter
def plain(value: Any) -> str:
    """A decimal as written, trailing zeros dropped: 2.100000 → 2.1, 5952.000 → 5952."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def money(value: Any, currency: str = "") -> str:
    """An amount with thousands separators at its currency's minor unit (Babel):
    ``{{ x|money:"KWD" }}`` 1.297 → 1.297, JPY 1235 → 1,235; with no currency, two
    decimals: 1507334.4 → 1,507,334.40."""
    from billing.money import format_money

    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if currency:
        return format_money(number, str(currency), symbol=False)
    return f"{number:,.2f}"
