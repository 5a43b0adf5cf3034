"""A test-only stand-in for the rating engine's ``compute_period`` (the seam named by
``settings.TESSERA_RERATE_PERIOD``): returns the charges a test sets for a period, as the
real engine would compute them from all the period's usage."""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

RERATED: dict[int, list["StubCharge"]] = {}
CALLS: list[tuple[int, datetime]] = []


@dataclass(frozen=True)
class StubCharge:
    product: Any
    kind: str
    line: int
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    description: str = ""


@dataclass
class StubRating:
    lines: list[StubCharge] = field(default_factory=list)


def compute_period_stub(*, period: Any, as_of: datetime) -> StubRating:
    CALLS.append((period.pk, as_of))
    return StubRating(list(RERATED[period.pk]))
