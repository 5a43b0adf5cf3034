"""Typed access to one entry of a catalog file, collecting errors that name entry and field."""

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from tenancy.countries import country_problem

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
MISSING = object()


class Entry:
    def __init__(self, section: str, index: int, raw: Any, errors: list[str]) -> None:
        self.section = section
        self.index = index
        self.raw = raw if isinstance(raw, dict) else {}
        self.errors = errors
        self.used: set[str] = set()
        key = self.raw.get("key") or self.raw.get("slug")
        self.label = f"{section}[{index}]" + (f" ({key})" if isinstance(key, str) else "")
        if not isinstance(raw, dict):
            self.error(None, "must be a mapping of fields")

    def children(self, field: str) -> list["Entry"]:
        """The entries of the list ``field`` (optional, empty by default), labelled under this
        one and reporting to the same errors."""
        raw = self.listing(field, []) or []
        return [Entry(f"{self.label}.{field}", i, item, self.errors) for i, item in enumerate(raw)]

    def error(self, field: str | None, message: str) -> None:
        where = f"{self.label}.{field}" if field else self.label
        self.errors.append(f"{where}: {message}")

    def get(self, field: str, default: Any = MISSING) -> Any:
        self.used.add(field)
        if field not in self.raw or self.raw[field] is None:
            if default is MISSING:
                self.error(field, "is required")
                return None
            return default
        return self.raw[field]

    def text(self, field: str, default: Any = MISSING, max_length: int = 200) -> Any:
        value = self.get(field, default)
        if value is None or value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.error(field, "must be text")
            return None
        value = str(value).strip()
        if default is MISSING and not value:
            self.error(field, "must not be empty")
        if len(value) > max_length:
            self.error(field, f"is longer than {max_length} characters")
        return value

    def slug(self, field: str, default: Any = MISSING) -> Any:
        value = self.text(field, default, max_length=64)
        if isinstance(value, str) and value and not _SLUG.match(value):
            self.error(field, f"{value!r} must be lower-case letters, digits, '-' or '_'")
        return value

    def choice(self, field: str, choices: list[str], default: Any = MISSING) -> Any:
        value = self.get(field, default)
        if value is not None and value is not default and value not in choices:
            self.error(field, f"{value!r} must be one of {', '.join(choices)}")
            return None
        return value

    def country(self, field: str, default: Any = MISSING) -> Any:
        value = self.text(field, default)
        problem = country_problem(value) if isinstance(value, str) and value else None
        if problem:
            self.error(field, problem)
        return value

    def currency(self, field: str) -> Any:
        value = self.text(field)
        if isinstance(value, str) and value and not re.fullmatch(r"[A-Z]{3}", value):
            self.error(field, f"{value!r} must be an ISO 4217 code in capitals (e.g. USD)")
        return value

    def decimal(
        self,
        field: str,
        default: Any = MISSING,
        *,
        positive: bool = False,
        min_zero: bool = True,
        column: tuple[int, int] = (28, 12),
    ) -> Any:
        """A decimal number that its column stores exactly: ``column`` is the model field's
        (max_digits, decimal_places). More decimals than the column keeps would be rounded
        silently (differently by SQLite and PostgreSQL), more digits would not fit: both are
        refused, naming the field."""
        value = self.get(field, default)
        if value is None or value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.error(field, 'must be a decimal number (quote it: "2.50")')
            return None
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            self.error(field, f"{value!r} is not a decimal number")
            return None
        if not number.is_finite():
            self.error(field, "must be finite")
            return None
        if positive and number <= 0:
            self.error(field, "must be greater than 0")
        elif min_zero and number < 0:
            self.error(field, "must not be negative")
        digits, places = column
        if number and number.adjusted() >= digits - places:
            self.error(field, f"{value!r} is too large (at most {digits - places} digits before "
                              "the decimal point)")  # fmt: skip
            return None
        # Decimal places as written, less trailing zeros (exact: no context rounding).
        shape = number.as_tuple()
        assert isinstance(shape.exponent, int)  # finite
        trailing = len(shape.digits) - len("".join(map(str, shape.digits)).rstrip("0"))
        if number and -(shape.exponent + trailing) > places:
            self.error(field, f"{value!r} has more than {places} decimal places")
            return None
        return number

    def integer(self, field: str, default: Any = MISSING, *, minimum: int = 0) -> Any:
        value = self.get(field, default)
        if value is None or value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(field, "must be a whole number")
            return None
        if value < minimum:
            self.error(field, f"must be at least {minimum}")
        return value

    def boolean(self, field: str, default: Any = MISSING) -> Any:
        value = self.get(field, default)
        if value is not None and not isinstance(value, bool):
            self.error(field, "must be true or false")
            return None
        return value

    def date(self, field: str, default: Any = MISSING) -> Any:
        value = self.get(field, default)
        if value is None or value is default or isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.error(field, f"{value!r} is not a date (YYYY-MM-DD)")
            return None

    def mapping(self, field: str, default: Any = MISSING) -> Any:
        value = self.get(field, default)
        if value is None or value is default:
            return value
        if not isinstance(value, dict):
            self.error(field, "must be a mapping")
            return None
        return value

    def listing(self, field: str, default: Any = MISSING) -> Any:
        value = self.get(field, default)
        if value is None or value is default:
            return value
        if not isinstance(value, list):
            self.error(field, "must be a list")
            return None
        return value

    def finish(self) -> None:
        """Name fields that no reader asked for: a typo must not be silently ignored."""
        for name in self.raw:
            if name not in self.used:
                self.error(name, "is not a known field")
