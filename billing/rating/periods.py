"""Billing periods from a contract's billing day (SPEC §3): half-open, aware UTC.

Periods start on the contract's start, then on every billing day, and the last one ends on the
contract's end: a contract that starts or ends between billing days has a partial first or
last period.
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, time

from ..models import BillingPeriod, Contract


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _add_month(day: date) -> date:
    return day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1)


def anchor_on_or_before(day: date, billing_day: int) -> date:
    """The billing day on or before ``day`` (billing days are 1-28: every month has one)."""
    if day.day >= billing_day:
        return day.replace(day=billing_day)
    previous = day.replace(day=1)
    previous = previous.replace(
        year=previous.year - (previous.month == 1), month=(previous.month - 2) % 12 + 1
    )
    return previous.replace(day=billing_day)


def cycle(day: date, billing_day: int) -> tuple[date, date]:
    """The full cycle ``[anchor, next anchor)`` that contains ``day``."""
    start = anchor_on_or_before(day, billing_day)
    return start, _add_month(start)


def period_bounds(contract: Contract, through: date) -> Iterator[tuple[date, date]]:
    """``[start, end)`` of each period of ``contract`` that starts before ``through``."""
    start = contract.start
    last = contract.end or date.max
    while start < min(last, through):
        end = min(cycle(start, contract.billing_day)[1], last)
        yield start, end
        start = end


def periods_ensure(*, contract: Contract, through: datetime) -> int:
    """Create the periods of ``contract`` that start before ``through``; returns how many were
    new. Idempotent: concurrent callers are stopped by the unique (org, contract, start)."""
    through_day = through.astimezone(UTC).date()
    if through.astimezone(UTC).time() != time(0):
        through_day = date.fromordinal(through_day.toordinal() + 1)
    rows = [
        BillingPeriod(
            org_id=contract.org_id,
            contract=contract,
            start=midnight(start),
            end=midnight(end),
            currency=contract.currency,
        )
        for start, end in period_bounds(contract, through_day)
    ]
    existing = set(
        BillingPeriod.objects.filter(org_id=contract.org_id, contract=contract).values_list(
            "start", flat=True
        )
    )
    missing = [row for row in rows if row.start not in existing]
    BillingPeriod.objects.bulk_create(missing, ignore_conflicts=True)
    return len(missing)
