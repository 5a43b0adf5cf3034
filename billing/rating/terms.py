"""Dated on-demand terms (SPEC §3 "Amendments", §6 step 3): which custom price or discount
prices a product on each day of a period, and the spans of days over which that holds.

A contract's terms (``ContractPrice``) hold over ``[valid_from, valid_until)``, dates at
00:00 UTC. On each day the product's custom price wins (it takes no discount), else the
product's discount, else the contract-wide discount, else the list price. Where an amendment
added a term of a kind that already held, the one that started last holds from its date (the
earlier one is not rewritten). Terms only change at midnight, so a period is cut into whole
days.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from ..models import ContractPrice

DAY = timedelta(days=1)
ZERO = Decimal(0)


def in_force(row: ContractPrice, day: date) -> bool:
    return row.valid_from <= day and (row.valid_until is None or day < row.valid_until)


def text(number: Decimal) -> str:
    return f"{number.normalize():f}"


@dataclass(frozen=True)
class Term:
    """The rows that price one product on a day: its custom price, or the discount in force
    (the product's own, else the contract-wide one); neither: the list price."""

    custom: ContractPrice | None = None
    discount: ContractPrice | None = None

    @property
    def key(self) -> tuple[int | None, int | None]:
        return (
            self.custom.pk if self.custom else None,
            self.discount.pk if self.discount else None,
        )

    @property
    def unit_price(self) -> Decimal | None:
        return self.custom.unit_price if self.custom else None

    @property
    def discount_percent(self) -> Decimal:
        return self.discount.discount_percent if self.discount else ZERO

    @property
    def label(self) -> str:
        if self.custom is not None and self.custom.unit_price is not None:
            return f"custom price {text(self.custom.unit_price)}"
        if self.discount_percent:
            scope = "" if self.discount and self.discount.product_id else " (all products)"
            return f"{text(self.discount_percent)}% off list{scope}"
        return "list price"


def term_on(rows: Iterable[ContractPrice], product_id: int, day: date) -> Term:
    """The term of ``day``; of two rows of one kind in force, the one that started last."""
    custom = own = overall = None
    for row in sorted(rows, key=lambda r: (r.valid_from, r.pk or 0)):
        if not in_force(row, day):
            continue
        if row.product_id is None:
            overall = row
        elif row.product_id == product_id:
            if row.unit_price is not None:
                custom = row
            else:
                own = row
    return Term(custom, own or overall)


@dataclass(frozen=True)
class TermSpan:
    start: date
    end: date  # exclusive
    term: Term


def term_spans(
    rows: Iterable[ContractPrice], product_id: int, first: date, last: date
) -> list[TermSpan]:
    """``[first, last)`` cut where the product's term changes, in order; neighbouring days
    under the same rows form one span."""
    rows = [r for r in rows if r.product_id in (None, product_id)]
    cuts = {first, last}
    for row in rows:
        for day in (row.valid_from, row.valid_until):
            if day is not None and first < day < last:
                cuts.add(day)
    days = sorted(cuts)
    spans: list[TermSpan] = []
    for start, end in zip(days, days[1:], strict=False):
        term = term_on(rows, product_id, start)
        if spans and spans[-1].term.key == term.key and spans[-1].end == start:
            spans[-1] = TermSpan(spans[-1].start, end, term)
        else:
            spans.append(TermSpan(start, end, term))
    return spans


def days_text(ranges: Iterable[tuple[date, date]]) -> str:
    """Half-open day ranges as people read them, each by its first and last day (inclusive):
    "2026-11-01 to 2026-11-10, 2026-11-21 to 2026-11-30"; touching ranges are merged."""
    merged: list[tuple[date, date]] = []
    for start, end in sorted(ranges):
        if merged and merged[-1][1] >= start:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return ", ".join(
        f"{start}" if end - start == DAY else f"{start} to {end - DAY}" for start, end in merged
    )
