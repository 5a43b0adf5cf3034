"""Parsing of the ISO 8601 dates and times Tessera accepts (SPEC §5: times are UTC)."""

from datetime import date


def month_of(value: str) -> tuple[int, int]:
    """``YYYY-MM`` → (year, month); ValueError otherwise."""
    day = date.fromisoformat(f"{value}-01")
    return day.year, day.month
