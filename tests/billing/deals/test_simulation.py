"""The simulation against known past usage, by hand.

acme's deal: 8 H100 from 2027-01-01 for 3 months at 2.00, 16 from 2027-02-01. Simulated on
2026-12-10 over the last 2 months (October and November 2026), the deal is replayed 3 months
earlier: 8 GPUs in October, 16 in November. acme's current contract acme-c charges H100 on
demand at 2.50 − 10 % = 2.25.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.deals.simulation import simulate

from ..conftest import START, gpu, ingest
from .conftest import draft, line

NOV_2_0500 = 32 * 24 + 5  # hours after 2026-10-01 00:00


def test_deal_vs_current_contract(am):
    ingest(
        [
            gpu(0, "36000"),  # Oct 1st 00:00: 10 GPU-hours
            gpu(1, "14400"),  # Oct 1st 01:00: 4 GPU-hours
            gpu(NOV_2_0500, "72000"),  # Nov 2nd 05:00: 20 GPU-hours
        ]
    )
    deal = draft(am)

    result = simulate(deal=deal, months=2, as_of=datetime(2026, 12, 10, tzinfo=UTC))

    assert result.shift_months == 3
    october, november = result.months
    # October under the deal: 8 × 744 h × 2.00 = 11,904.00 reserved; hour 0 uses 10 of 8:
    # 2 GPU-hours burst at list 2.50 = 5.00; hour 1 uses 4, covered. → 11,909.00.
    # On acme-c: 14 GPU-hours × 2.25 = 31.50.
    assert (october.usage, october.current, october.basis) == (
        Decimal(14),
        Decimal("31.50"),
        "acme-c",
    )
    assert (october.reserved, october.covered, october.burst, october.burst_hours) == (
        Decimal(5952), Decimal(12), Decimal(2), 1,
    )  # fmt: skip
    assert october.deal == Decimal("11909.00")
    # November: 16 × 720 h × 2.00 = 23,040.00; 20 used of 16 → 4 burst × 2.50 = 10.00.
    # On acme-c: 20 × 2.25 = 45.00.
    assert (november.deal, november.current, november.burst, november.burst_hours) == (
        Decimal("23050.00"), Decimal("45.00"), Decimal(4), 1,
    )  # fmt: skip
    assert result.total_deal == Decimal("34959.00")
    assert result.total_current == Decimal("76.50")


def test_a_burst_price_on_the_line_and_a_month_without_contract(am):
    ingest([gpu(0, "36000", day0=START + timedelta(days=61))])  # Dec 1st: 10 GPU-hours
    deal = draft(am, line(burst_unit_price=Decimal("2.40"), ramp=[]))

    result = simulate(deal=deal, months=1, as_of=datetime(2027, 1, 5, tzinfo=UTC))

    (december,) = result.months
    # December 2026 = deal month 1: 8 × 744 × 2.00 = 11,904.00 + 2 burst × 2.40 = 4.80.
    # No contract of acme covers December: list price 10 × 2.50 = 25.00.
    assert (december.deal, december.current, december.basis) == (
        Decimal("11908.80"), Decimal("25.00"), "list price",
    )  # fmt: skip
