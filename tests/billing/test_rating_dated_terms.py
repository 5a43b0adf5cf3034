"""Stacked reservations and dated terms (SPEC §3 "Reservations stack", "Amendments"; §6 steps
2-3), with amounts worked out by hand over November 2026: 30 days, 720 hours."""

from datetime import UTC, datetime
from decimal import Decimal as D

from billing.invoicing.drafting import periods_close
from billing.models import BillingPeriod, RatedCharge, ReservationUsage
from billing.services import org_rate
from tenancy.models import Org

from ..conftest import make_event
from .conftest import contract, gpu, ingest

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


def november(**overrides):
    return contract(start="2026-11-01", end="2026-12-01", **overrides)


def every_hour(seconds: str) -> list[dict]:
    return [gpu(hour, seconds, day0=NOV) for hour in range(720)]


def rate() -> BillingPeriod:
    org_rate(org=Org.objects.get(slug="acme"), as_of=DEC)
    return BillingPeriod.objects.get(org__slug="acme", start=NOV)


def lines(period: BillingPeriod) -> list[tuple]:
    return [
        (c.kind, c.line, c.quantity, c.unit_price, c.amount, c.description)
        for c in RatedCharge.objects.filter(period=period).order_by("kind", "line")
    ]


def test_an_expansion_mid_period_stacks_on_the_reservation(catalog):
    # given 4 H100 reserved all month at 3.00 (burst 3.50), and 2 more from the 11th at 2.80;
    # 5 GPUs used every hour of the month
    reservations = [
        {"product": "h100", "quantity": 4, "unit_price": "3.00", "burst_unit_price": "3.50"},
        {"product": "h100", "quantity": 2, "unit_price": "2.80", "start": "2026-11-11"},
    ]
    catalog(november(reservations=reservations))
    ingest(every_hour("18000"))

    period = rate()

    # reservation lines, each at its own price: 4 × 720 h × 3.00 = 8,640.00 and
    # 2 × 480 h × 2.80 = 2,688.00. R(h) = 4 for the first 240 h, then 6: burst 1 × 240 h at
    # the burst price of the reservation in force that started last (the first one's, 3.50,
    # while it is alone; no burst after the 11th) = 840.00; covered 4 × 240 + 5 × 480 = 3,360.
    assert lines(period) == [
        ("burst", 0, D(240), D("3.50"), D("840.00"), ""),
        ("covered", 0, D(3360), D(0), D(0), ""),
        ("reservation", 0, D(2880), D("3.00"), D("8640.00"),
         "4 reserved 2026-11-01 to 2026-11-30"),
        ("reservation", 1, D(960), D("2.80"), D("2688.00"),
         "2 reserved 2026-11-11 to 2026-11-30"),
    ]  # fmt: skip
    assert period.subtotal == D("12168.00")
    # each reservation's share: the older one fills first; the burst is the newer one's
    # only where it sets the burst price (never here)
    shares = {
        u.reservation.quantity: (u.reserved, u.used, u.covered, u.burst)
        for u in ReservationUsage.objects.filter(period=period).select_related("reservation")
    }
    assert shares == {
        D(4): (D(2880), D(3120), D(2880), D(240)),
        D(2): (D(960), D(480), D(480), D(0)),
    }


def test_the_burst_price_is_that_of_the_reservation_that_started_last(catalog):
    # given the same stack, the expansion with its own burst price 3.20, and 7 GPUs used
    reservations = [
        {"product": "h100", "quantity": 4, "unit_price": "3.00", "burst_unit_price": "3.50"},
        {"product": "h100", "quantity": 2, "unit_price": "2.80", "start": "2026-11-11",
         "burst_unit_price": "3.20"},
    ]  # fmt: skip
    catalog(november(reservations=reservations))
    ingest(every_hour("25200"))

    period = rate()

    # burst 3 × 240 h at 3.50 = 2,520.00, then 1 × 480 h at 3.20 = 1,536.00
    bursts = [line for line in lines(period) if line[0] == "burst"]
    assert bursts == [
        ("burst", 0, D(720), D("3.50"), D("2520.00"), "2026-11-01 to 2026-11-10"),
        ("burst", 1, D(480), D("3.20"), D("1536.00"), "2026-11-11 to 2026-11-30"),
    ]


def test_a_ramp_shows_on_the_reservation_line(catalog):
    reservations = [
        {"product": "h100", "quantity": 8, "unit_price": "2.00",
         "ramp": [{"from": "2026-11-16", "quantity": 16}]},
    ]  # fmt: skip
    catalog(november(reservations=reservations))
    ingest([gpu(0, "3600", day0=NOV)])

    period = rate()

    # 8 × 360 h + 16 × 360 h = 8,640 GPU-hours × 2.00
    reservation = RatedCharge.objects.get(period=period, kind="reservation")
    assert (reservation.quantity, reservation.amount, reservation.description) == (
        D(8640),
        D("17280.00"),
        "8 reserved 2026-11-01 to 2026-11-15, 16 reserved 2026-11-16 to 2026-11-30",
    )


def test_a_discount_that_changes_inside_the_period(catalog):
    # given H100 at list 2.50 on demand, 10 % off until the 16th, 20 % off from the 16th,
    # and 2 GPUs used every hour
    discounts = [
        {"product": "h100", "percent": "10", "until": "2026-11-16"},
        {"product": "h100", "percent": "20", "from": "2026-11-16"},
    ]
    catalog(november(discounts=discounts))
    ingest(every_hour("7200"))

    period = rate()

    # 15 days × 24 h × 2 = 720 GPU-hours at 2.25 = 1,620.00; 720 at 2.00 = 1,440.00
    assert lines(period) == [
        ("on_demand", 0, D(720), D("2.25"), D("1620.00"), "10% off list, 2026-11-01 to 2026-11-15"),
        ("on_demand", 1, D(720), D("2.00"), D("1440.00"), "20% off list, 2026-11-16 to 2026-11-30"),
    ]  # fmt: skip
    assert period.subtotal == D("3060.00")


def test_a_product_discount_ending_gives_way_to_the_contract_wide_one(catalog):
    # given 5 % off everything all month and 10 % off H100 for the first 10 days
    discounts = [{"percent": "5"}, {"product": "h100", "percent": "10", "until": "2026-11-11"}]
    catalog(november(discounts=discounts))
    ingest(every_hour("3600"))

    period = rate()

    # 240 h at 2.25 = 540.00; 480 h at 2.375 = 1,140.00
    assert lines(period) == [
        ("on_demand", 0, D(240), D("2.25"), D("540.00"), "10% off list, 2026-11-01 to 2026-11-10"),
        ("on_demand", 1, D(480), D("2.375"), D("1140.00"),
         "5% off list (all products), 2026-11-11 to 2026-11-30"),
    ]  # fmt: skip


def _tokens_per_day(day: int, millions: int) -> dict:
    return make_event(
        id=f"tok-{day}",
        type="llm.tokens",
        time=NOV.replace(day=day, hour=12),
        data={"input_tokens": str(millions * 1_000_000), "model": "llama"},
    )


def test_a_custom_price_mid_period_under_graduated_tiers(catalog):
    # given Llama input on graduated tiers (first 1,000 M at 0.90, then 0.70), 10 % off all
    # month, and a custom price of 0.50 from the 11th to the 20th; 60 M tokens a day on
    # days 1-10, 80 M on days 11-20, 50 M on days 21-30
    daily = {day: 60 if day <= 10 else 80 if day <= 20 else 50 for day in range(1, 31)}
    catalog(
        november(
            discounts=[{"product": "llama-in", "percent": "10"}],
            prices=[
                {
                    "product": "llama-in",
                    "unit_price": "0.50",
                    "from": "2026-11-11",
                    "until": "2026-11-21",
                }
            ],
        )  # fmt: skip
    )
    ingest([_tokens_per_day(day, millions) for day, millions in daily.items()])

    period = rate()

    # Tiers apply to the period's total; each term takes its place in it in order:
    # days 1-10, 600 M: tier 1 at 0.90 − 10 % = 0.81 → 486.00;
    # days 11-20, 800 M at the custom 0.50 (no tiers, no discount) → 400.00; they count:
    # days 21-30, 500 M come after 1,400 M, all in tier 2 at 0.70 − 10 % = 0.63 → 315.00.
    assert lines(period) == [
        ("on_demand", 0, D(600), D("0.81"), D("486.00"),
         "10% off list, 2026-11-01 to 2026-11-10; tier 1: 0–1000"),
        ("on_demand", 1, D(800), D("0.50"), D("400.00"),
         "custom price 0.5, 2026-11-11 to 2026-11-20"),
        ("on_demand", 2, D(500), D("0.63"), D("315.00"),
         "10% off list, 2026-11-21 to 2026-11-30; tier 2: 1000–∞"),
    ]  # fmt: skip
    assert period.subtotal == D("1201.00")


def test_the_invoice_copies_each_line_with_its_dates(catalog):
    reservations = [
        {"product": "h100", "quantity": 4, "unit_price": "3.00", "burst_unit_price": "3.50"},
        {"product": "h100", "quantity": 2, "unit_price": "2.80", "start": "2026-11-11"},
    ]
    catalog(november(reservations=reservations))
    ingest(every_hour("18000"), now=DEC)
    rate()

    (invoice,) = periods_close(as_of=datetime(2026, 12, 3, tzinfo=UTC)).drafted

    assert [(line.kind, line.description, line.amount) for line in invoice.lines.all()] == [
        ("reservation", "H100 GPU-hour: reservation (4 reserved 2026-11-01 to 2026-11-30)",
         D("8640.00")),
        ("reservation", "H100 GPU-hour: reservation (2 reserved 2026-11-11 to 2026-11-30)",
         D("2688.00")),
        ("covered", "H100 GPU-hour: covered by reservation", D(0)),
        ("burst", "H100 GPU-hour: burst above reservation", D("840.00")),
    ]  # fmt: skip
