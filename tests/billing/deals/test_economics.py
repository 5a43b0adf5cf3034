"""Deal economics worked out by hand. Hours are exact UTC hours: January and March 2027 have
744 (31 days), February 672 (28), April 720 (30), May 744."""

from datetime import date
from decimal import Decimal

from billing.deals.economics import deal_economics
from billing.deals.schedule import Step, add_months, peak, ramped

from .conftest import draft, line


def test_one_ramped_line(am):
    # 8 GPUs × 744 h (Jan) + 16 × 672 (Feb) + 16 × 744 (Mar) = 5,952 + 10,752 + 11,904
    # = 28,608 GPU-hours; × 2.00 = 57,216.00; at list 2.50: 71,520.00; discount 20 %.
    economics = deal_economics(deal=draft(am))

    assert economics.start == date(2027, 1, 1)
    assert economics.end == date(2027, 4, 1)
    assert economics.lines[0].gpu_hours == Decimal(28608)
    assert economics.lines[0].list_unit_price == Decimal("2.50")
    assert economics.total_contract_value == Decimal("57216.00")
    assert economics.list_value == Decimal("71520.00")
    assert economics.discount_percent == Decimal("20.00")
    assert [(m.month, m.gpu_hours, m.amount) for m in economics.monthly] == [
        (date(2027, 1, 1), Decimal(5952), Decimal("11904.00")),
        (date(2027, 2, 1), Decimal(10752), Decimal("21504.00")),
        (date(2027, 3, 1), Decimal(11904), Decimal("23808.00")),
    ]


def test_two_lines_and_a_mid_month_start(am):
    # Line 2: 16 GPUs from 2027-04-15 for 2 months (to 2027-06-15) at 1.90:
    # 61 days = 1,464 h × 16 = 23,424 GPU-h; × 1.90 = 44,505.60; at list 58,560.00.
    # TCV 57,216.00 + 44,505.60 = 101,721.60; list 130,080.00;
    # discount 28,358.40 / 130,080 = 21.8007 % → 21.80.
    deal = draft(
        am,
        line(),
        line(quantity=16, start=date(2027, 4, 15), term_months=2, unit_price=Decimal("1.90"),
             ramp=[]),
    )  # fmt: skip

    economics = deal_economics(deal=deal)

    assert economics.total_contract_value == Decimal("101721.60")
    assert economics.list_value == Decimal("130080.00")
    assert economics.discount_percent == Decimal("21.80")
    # April: 16 days (15th-30th) × 24 × 16 × 1.90 = 11,673.60; June: 14 days → 10,214.40.
    assert [m.amount for m in economics.monthly][3:] == [
        Decimal("11673.60"),
        Decimal("22617.60"),
        Decimal("10214.40"),
    ]
    assert sum(m.amount for m in economics.monthly) == economics.total_contract_value


def test_month_arithmetic_clamps_to_the_months_last_day():
    assert add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert add_months(date(2027, 3, 1), -3) == date(2026, 12, 1)


def test_a_mid_month_ramp_counts_at_its_peak():
    steps = ramped(
        date(2027, 1, 1), date(2027, 4, 1), Decimal(8), [(date(2027, 2, 15), Decimal(16))]
    )

    assert steps == [
        Step(date(2027, 1, 1), date(2027, 2, 15), Decimal(8)),
        Step(date(2027, 2, 15), date(2027, 4, 1), Decimal(16)),
    ]
    assert peak(steps, date(2027, 2, 1), date(2027, 3, 1)) == Decimal(16)
    assert peak(steps, date(2027, 1, 1), date(2027, 2, 1)) == Decimal(8)
