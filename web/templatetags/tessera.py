import re
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
def money(value: Any) -> str:
    """Two decimals with thousands separators: 1507334.4 → 1,507,334.40."""
    try:
        return f"{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return str(value)


@register.filter
def changes(value: Any) -> list[tuple[str, str]]:
    """An audit entry's values as readable (label, value) pairs: ``{"credits_given_back":
    "30.0000"}`` → ``[("credits given back", "30.0000")]``; nested values joined plainly."""
    if not isinstance(value, dict):
        return [("", str(value))]

    def text(item: Any) -> str:
        if isinstance(item, dict):
            return ", ".join(f"{k.replace('_', ' ')} {text(v)}" for k, v in item.items())
        if isinstance(item, list):
            return ", ".join(text(v) for v in item)
        if item in (None, ""):
            return "—"
        text_ = str(item)
        # Stored amounts have 4 places (20, 4): 240.0000 reads as 240.00.
        if re.fullmatch(r"-?\d+\.\d{2}00", text_):
            return text_[:-2]
        return text_

    return [(str(key).replace("_", " "), text(item)) for key, item in value.items()]


@register.filter
def price(value: Any) -> str:
    """A unit price with at least two decimals, and all it has beyond: 2 → 2.00,
    2.1 → 2.10, 0.0000125 → 0.0000125."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = plain(number)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


@register.filter
def qty(value: Any) -> str:
    """A quantity with thousands separators, trailing zeros dropped: 14112.000 → 14,112."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    whole, _, fraction = plain(number).partition(".")
    sign = "-" if whole.startswith("-") else ""
    grouped = f"{sign}{int(whole.lstrip('-') or 0):,}"
    return f"{grouped}.{fraction}" if fraction else grouped
