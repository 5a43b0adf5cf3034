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
def amount(value: Any, numbers: Any) -> str:
    """An amount in the org's locale and currency: ``{{ x|amount:numbers }}``."""
    return str(numbers.money(value))


@register.filter
def price(value: Any, numbers: Any = None) -> str:
    """A unit price with at least two decimals, and all it has beyond: 2 → 2.00,
    2.1 → 2.10, 0.0000125 → 0.0000125; in the org's locale and currency with
    ``{{ x|price:numbers }}``."""
    if numbers is not None:
        return str(numbers.price(value))
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = plain(number)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


@register.filter
def qty(value: Any, numbers: Any = None) -> str:
    """A quantity with thousands separators, trailing zeros dropped: 14112.000 → 14,112; in
    the org's locale with sensible decimals with ``{{ x|qty:numbers }}``."""
    if numbers is not None:
        return str(numbers.quantity(value))
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    whole, _, fraction = plain(number).partition(".")
    sign = "-" if whole.startswith("-") else ""
    grouped = f"{sign}{int(whole.lstrip('-') or 0):,}"
    return f"{grouped}.{fraction}" if fraction else grouped


@register.filter
def pct(value: Any, numbers: Any) -> str:
    """A percentage (given in percent) in the org's locale: ``{{ x|pct:numbers }}``."""
    return str(numbers.percent(value))


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """``{{ mapping|get_item:key }}``: a dict's value by a variable key ('' when absent)."""
    return mapping.get(key, "") if hasattr(mapping, "get") else ""


@register.filter
def label(name: Any) -> str:
    """A key as a label: gpu_model → Gpu model."""
    text = str(name).replace("_", " ")
    return text[:1].upper() + text[1:]


@register.filter
def threshold(alert: Any, numbers: Any = None) -> str:
    """An alert's threshold in the reader's locale: a percentage, or an amount in the
    alert's own currency."""
    from web.formatting import DEFAULT_LOCALE, Numbers

    locale = numbers.locale if numbers is not None else DEFAULT_LOCALE
    if alert.kind in alert.PERCENT_KINDS:
        return Numbers(locale, "USD").percent(alert.threshold)
    return Numbers(locale, alert.currency).money(alert.threshold)
