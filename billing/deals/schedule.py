"""Quantities over time as step functions of the UTC date: a deal line with its ramp, a
reservation with its ramps, a capacity pool's installed GPUs.

A ``Step`` holds ``quantity`` over ``[start, end)`` (dates at 00:00 UTC, end exclusive).
Quantities only change at midnight, so a month's peak is the largest level at the month's
first day or at any step boundary inside it.
"""

import calendar
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

FAR_FUTURE = date(9999, 1, 1)
ZERO = Decimal(0)


@dataclass(frozen=True)
class Step:
    start: date
    end: date
    quantity: Decimal


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (or earlier), clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def month_start(day: date) -> date:
    return day.replace(day=1)


def months_between(first: date, last: date) -> list[date]:
    """The first days of the calendar months that ``[first, last)`` touches."""
    months = []
    month = month_start(first)
    while month < last:
        months.append(month)
        month = add_months(month, 1)
    return months


def ramped(
    start: date, end: date, quantity: Decimal, ramp: Iterable[tuple[date, Decimal]]
) -> list[Step]:
    """``quantity`` from ``start``, changed at each ramp date inside the term, until ``end``."""
    points = [(start, quantity), *sorted((d, q) for d, q in ramp if start < d < end)]
    ends = [d for d, _ in points[1:]] + [end]
    return [Step(d, e, q) for (d, q), e in zip(points, ends, strict=True) if d < e]


def level(steps: Iterable[Step], day: date) -> Decimal:
    return sum((s.quantity for s in steps if s.start <= day < s.end), ZERO)


def boundaries(steps: Iterable[Step], first: date, last: date) -> list[date]:
    """``first`` and every step boundary inside ``(first, last)``: where a level may change."""
    days = {first}
    for s in steps:
        for day in (s.start, s.end):
            if first < day < last:
                days.add(day)
    return sorted(days)


def peak(steps: list[Step], first: date, last: date) -> Decimal:
    """The largest level over ``[first, last)`` (max concurrent)."""
    return max(level(steps, day) for day in boundaries(steps, first, last))


def hours(start: date, end: date) -> int:
    """Exact hours of ``[start, end)`` in UTC (no daylight saving): 24 per day."""
    return max(0, (end - start).days) * 24


def unit_hours(steps: Iterable[Step], first: date, last: date) -> Iterator[tuple[Decimal, int]]:
    """(quantity, hours) of each step's overlap with ``[first, last)``."""
    for s in steps:
        overlap = hours(max(s.start, first), min(s.end, last))
        if overlap:
            yield s.quantity, overlap
