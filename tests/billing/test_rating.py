"""Rating, with amounts worked out by hand (SPEC §6 steps 1-4, 7)."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from billing.models import BillingPeriod, CreditDraw, CreditGrant, RatedCharge, ReservationUsage
from billing.services import org_rate
from tenancy.models import Org

from .conftest import START, charges, contract, gpu, ingest

END = datetime(2026, 10, 3, tzinfo=UTC)


def rate(slug: str = "acme", as_of: datetime = END) -> BillingPeriod:
    org_rate(org=Org.objects.get(slug=slug), as_of=as_of)
    return BillingPeriod.objects.get(org__slug=slug, start=START)


def test_per_unit_rounds_once_per_line(catalog):
    # given 1234 GPU-seconds of H100 at 2.50/GPU-hour
    catalog(contract())
    ingest([gpu(0, "600"), gpu(1, "634")])
    # when
    period = rate()
    # then 1234/3600 = 0.342777… h × 2.50 = 0.856944… → 0.86 (half-up, once)
    assert charges(period) == [
        ("h100", "on_demand", 0, D("0.342777777778"), D("2.50"), D("0.86")),
    ]
    assert period.subtotal == D("0.86")
    assert period.status == BillingPeriod.Status.CLOSING


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        # exactly on the boundary: all 1000 M tokens in tier 1
        ("1000000000", [(0, D("1000"), D("0.90"), D("900.00"))]),
        # 1500.5 M: 1000 × 0.90 + 500.5 × 0.70 = 900.00 + 350.35
        ("1500500000", [(0, D("1000"), D("0.90"), D("900.00")),
                        (1, D("500.5"), D("0.70"), D("350.35"))]),
        # 0.5 M tokens: 0.45
        ("500000", [(0, D("0.5"), D("0.90"), D("0.45"))]),
    ],
)  # fmt: skip
def test_graduated_tiers(catalog, tokens, expected):
    catalog(contract())
    ingest([_tokens(tokens)])
    period = rate()
    assert [(c[2], c[3], c[4], c[5]) for c in charges(period)] == expected


def _tokens(count: str, hour: int = 3) -> dict:
    from ..conftest import make_event

    return make_event(
        id=f"tok-{hour}-{count}",
        type="llm.tokens",
        time=START.replace(hour=hour),
        data={"input_tokens": count, "model": "llama"},
    )


@pytest.mark.parametrize(
    ("gpu_seconds", "line", "unit_price", "amount"),
    [
        ("360000", 0, D("1.60"), D("160.00")),  # 100 h: the boundary is still tier 1
        ("361800", 1, D("1.40"), D("140.70")),  # 100.5 h, all at tier 2: 100.5 × 1.40
    ],
)
def test_volume_tiers(catalog, gpu_seconds, line, unit_price, amount):
    catalog(contract())
    ingest([gpu(0, gpu_seconds, model="A100")])
    period = rate()
    assert charges(period) == [
        ("a100", "on_demand", line, D(gpu_seconds) / 3600, unit_price, amount)
    ]


@pytest.mark.parametrize(
    ("gpu_seconds", "blocks", "amount"),
    [("3600", 1, D("12.00")), ("36000", 1, D("12.00")), ("36001", 2, D("24.00"))],
)
def test_package_bills_started_blocks_whole(catalog, gpu_seconds, blocks, amount):
    # given H100 sold in blocks of 10 GPU-hours at 12.00 (a started block is billed whole)
    cards = [
        {"key": "list-usd", "currency": "USD", "effective_from": "2026-01-01", "prices": [
            {"product": "h100", "model": "package", "package_size": 10, "unit_price": "12.00"}]},
    ]  # fmt: skip
    catalog(contract(), rate_cards=cards)
    ingest([gpu(0, gpu_seconds)])
    period = rate()
    assert charges(period) == [("h100", "on_demand", 0, D(blocks), D("12.00"), amount)]


def _reservation(**overrides) -> dict:
    base = {"product": "h100", "quantity": 2, "unit_price": "2.00", "burst_unit_price": "3.00",
            "ramp": [{"from": "2026-10-02", "quantity": 4}]}  # fmt: skip
    return {**base, **overrides}


def test_reservation_with_ramp_below_at_and_above(catalog):
    # given 2 GPUs reserved on day 1, 4 from day 2, at 2.00/GPU-hour, burst 3.00
    catalog(contract(reservations=[_reservation()]))
    ingest(
        [
            gpu(0, "3600"),  # 1 used of 2: below
            gpu(1, "7200"),  # 2 of 2: at
            gpu(2, "12600"),  # 3.5 of 2: 1.5 burst
            gpu(24, "10800"),  # 3 of 4: below (after the ramp)
            gpu(29, "18000"),  # 5 of 4: 1 burst
        ]
    )
    period = rate()
    # reserved: 24 h × 2 + 24 h × 4 = 144 unit-hours × 2.00 = 288.00
    # covered: 1 + 2 + 2 + 3 + 4 = 12; burst: 1.5 + 1 = 2.5 × 3.00 = 7.50
    assert charges(period) == [
        ("h100", "burst", 0, D("2.5"), D("3.00"), D("7.50")),
        ("h100", "covered", 0, D("12"), D(0), D(0)),
        ("h100", "reservation", 0, D("144"), D("2.00"), D("288.00")),
    ]
    assert period.subtotal == D("295.50")
    detail = ReservationUsage.objects.get(period=period)
    assert (detail.reserved, detail.used, detail.covered, detail.burst) == (
        D(144),
        D("14.5"),
        D(12),
        D("2.5"),
    )
    assert len(detail.hours) == 48
    assert detail.hours[2] == [2, "2", "3.5"]
    assert detail.hours[29] == [29, "4", "5"]


def test_burst_defaults_to_on_demand_price_after_discount(catalog):
    # given no burst price and a 10% discount on h100 (list 2.50 → 2.25)
    res = _reservation(burst_unit_price=None, ramp=[])
    catalog(contract(reservations=[res], discounts=[{"product": "h100", "percent": "10"}]))
    ingest([gpu(0, "10800")])  # 3 used of 2: 1 burst
    period = rate()
    assert ("h100", "burst", 0, D(1), D("2.25"), D("2.25")) in charges(period)


def test_discount_per_product_and_overall(catalog):
    # given 10% off h100 and 5% off everything else
    discounts = [{"product": "h100", "percent": "10"}, {"percent": "5"}]
    catalog(contract(discounts=discounts))
    ingest([gpu(0, "36000"), gpu(0, "36000", model="A100")])
    period = rate()
    # h100: 10 h × 2.25 = 22.50; a100: 10 h × 1.60 × 0.95 = 10 × 1.52 = 15.20
    assert charges(period) == [
        ("a100", "on_demand", 0, D(10), D("1.52"), D("15.20")),
        ("h100", "on_demand", 0, D(10), D("2.25"), D("22.50")),
    ]


def test_custom_unit_price_replaces_the_rate_card(catalog):
    catalog(contract(prices=[{"product": "a100", "unit_price": "1.10"}]))
    ingest([gpu(0, "36000", model="A100")])
    period = rate()
    assert charges(period) == [("a100", "on_demand", 0, D(10), D("1.10"), D("11.00"))]


def test_partial_first_period_with_prorated_minimum(catalog):
    # given a contract from Oct 20 billed on the 1st: first period [Oct 20, Nov 1) = 288 h,
    # 1 GPU reserved at 1.00, and a minimum of 1000.00 per (31-day, 744 h) period
    catalog(
        contract(
            start="2026-10-20",
            end="2027-01-01",
            reservations=[{"product": "h100", "quantity": 1, "unit_price": "1.00"}],
            spend_commitments=[{"amount": "1000.00", "per": "period"}],
        )
    )
    org = Org.objects.get(slug="acme")
    org_rate(org=org, as_of=datetime(2026, 11, 1, tzinfo=UTC))
    period = BillingPeriod.objects.get(org=org)
    assert (period.start, period.end) == (
        datetime(2026, 10, 20, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
    )
    # reservation 288 × 1.00 = 288.00; minimum 1000 × 288/744 = 387.0967… → 387.10;
    # true-up 387.10 − 288.00 = 99.10
    assert charges(period) == [
        ("h100", "covered", 0, D(0), D(0), D(0)),
        (None, "minimum_true_up", 0, D(1), D("99.10"), D("99.10")),
        ("h100", "reservation", 0, D(288), D("1.00"), D("288.00")),
    ]
    assert period.subtotal == D("387.10")


def test_minimum_true_up_only_once_the_period_is_over(catalog):
    catalog(contract(spend_commitments=[{"amount": "100.00", "per": "period"}]))
    ingest([gpu(0, "36000")])  # 10 h × 2.50 = 25.00
    halfway = rate(as_of=datetime(2026, 10, 2, tzinfo=UTC))
    assert [c[1] for c in charges(halfway)] == ["on_demand"]
    assert halfway.forecast == D("50.00")  # run-rate 25.00 over 24 of 48 h, doubled
    period = rate()
    # over: minimum 100 × 48/744 = 6.4516… → 6.45 < 25.00: no true-up
    assert [c[1] for c in charges(period)] == ["on_demand"]


def test_minimum_true_up_for_a_full_period(catalog):
    catalog(
        contract(
            start="2026-10-01",
            end="2026-11-01",
            spend_commitments=[{"amount": "100.00", "per": "period"}],
        )
    )
    ingest([gpu(0, "36000")])  # 10 h × 2.50 = 25.00
    period = rate(as_of=datetime(2026, 11, 1, tzinfo=UTC))
    assert charges(period) == [
        (None, "minimum_true_up", 0, D(1), D("75.00"), D("75.00")),
        ("h100", "on_demand", 0, D(10), D("2.50"), D("25.00")),
    ]
    assert period.subtotal == D("100.00")


def test_minimum_per_term_is_billed_in_the_last_period(catalog):
    # given a term of Oct 1 → Nov 3, periods [Oct 1, Nov 1) and [Nov 1, Nov 3), min 100 per term
    catalog(contract(end="2026-11-03", spend_commitments=[{"amount": "100.00", "per": "term"}]))
    ingest([gpu(0, "36000")])  # 25.00 in October
    ingest([gpu(24 * 31, "3600")])  # 2.50 in November
    org = Org.objects.get(slug="acme")
    org_rate(org=org, as_of=datetime(2026, 11, 3, tzinfo=UTC))
    october, november = BillingPeriod.objects.filter(org=org).order_by("start")
    assert october.subtotal == D("25.00")  # no true-up before the term ends
    # 100.00 − 25.00 − 2.50 = 72.50
    assert (None, "minimum_true_up", 1, D(1), D("72.50"), D("72.50")) in charges(november)


def test_credits_by_expiry_then_priority_across_grants(catalog):
    # given three grants: B expires first; A and C expire together, C has priority 1
    credits = [
        {"key": "a", "amount": "100.00", "expires": "2026-12-01", "priority": 2},
        {"key": "b", "amount": "50.00", "expires": "2026-11-15", "priority": 5},
        {"key": "c", "amount": "30.00", "expires": "2026-12-01", "priority": 1},
        {"key": "expired", "amount": "999.00", "effective": "2026-09-01", "expires": "2026-10-01"},
        {"key": "later", "amount": "999.00", "effective": "2026-10-03"},
    ]
    catalog(contract(credits=credits))
    ingest([gpu(0, "216000")])  # 60 h × 2.50 = 150.00
    period = rate()
    balances = dict(CreditGrant.objects.values_list("key", "balance"))
    # 150.00: b 50.00, then c 30.00, then a 70.00 → a keeps 30.00; the others are not in force
    assert balances == {
        "a": D("30.00"), "b": D(0), "c": D(0), "expired": D("999.00"), "later": D("999.00")
    }  # fmt: skip
    draws = list(CreditDraw.objects.filter(period=period).values_list("grant__key", "amount"))
    assert sorted(draws) == [("a", D("70.00")), ("b", D("50.00")), ("c", D("30.00"))]
    assert period.subtotal == D("150.00")


def test_rerating_appends_credit_deltas_and_never_overdraws(catalog):
    catalog(contract(credits=[{"key": "a", "amount": "40.00"}]))
    ingest([gpu(0, "36000")])  # 25.00
    period = rate(as_of=datetime(2026, 10, 2, tzinfo=UTC))
    assert CreditGrant.objects.get().balance == D("15.00")
    ingest([gpu(30, "36000")])  # another 25.00: 50.00 > 40.00 of credit
    period = rate()
    assert CreditGrant.objects.get().balance == D(0)
    assert list(CreditDraw.objects.order_by("id").values_list("amount", "balance_after")) == [
        (D("25.00"), D("15.00")),
        (D("15.00"), D(0)),
    ]
    assert period.subtotal == D("50.00")


@pytest.mark.parametrize(
    ("card", "issuer", "expected"),
    [
        ("list-usd", "tessera-fr", D("0.86")),  # 0.342777… × 2.50 = 0.8569… → 0.86
        ("list-eur", "tessera-fr", D("0.79")),  # × 2.30 = 0.788388… → 0.79
        ("list-jpy", "tessera-jp", D("130")),  # × 380 = 130.2555… → 130 (no minor unit)
    ],
)
def test_currencies(catalog, card, issuer, expected):
    catalog(contract(rate_card=card, issuer=issuer))
    ingest([gpu(0, "1234")])
    period = rate()
    assert period.currency == {"list-usd": "USD", "list-eur": "EUR", "list-jpy": "JPY"}[card]
    [charge] = RatedCharge.objects.filter(period=period)
    assert (charge.amount, charge.currency) == (expected, period.currency)


def test_jpy_half_up_at_the_yen(catalog):
    catalog(contract(rate_card="list-jpy", issuer="tessera-jp"))
    ingest([gpu(0, "4500")])  # 1.25 h × 380 = 475; + 0.5 yen case below
    ingest([gpu(1, "9")])  # 0.0025 h × 380 = 0.95 → total 1.2525 h × 380 = 475.95 → 476
    period = rate()
    assert period.subtotal == D("476")


def test_usage_of_other_orgs_and_dimensions_is_not_billed(catalog):
    catalog(contract())
    ingest(
        [
            gpu(0, "3600"),
            gpu(0, "3600", org="globex"),
            gpu(0, "3600", model="B200"),  # no product for B200
        ]
    )
    period = rate()
    assert charges(period) == [("h100", "on_demand", 0, D(1), D("2.50"), D("2.50"))]


def _listed(period: BillingPeriod) -> list[tuple[str | None, str, int, D, D | None, D, D]]:
    """(product, kind, line, quantity, list unit price, net unit price, amount) per charge."""
    return [
        (c.product.key if c.product else None, c.kind, c.line, c.quantity, c.list_unit_price,
         c.unit_price, c.amount)
        for c in RatedCharge.objects.filter(period=period)
        .select_related("product")
        .order_by("kind", "product__key", "line")
    ]  # fmt: skip


def test_a_discount_keeps_the_list_price_beside_the_net_price_of_each_line(catalog):
    # given 10% off everything: h100 per unit (list 2.50), llama graduated (0.90, 0.70)
    catalog(contract(discounts=[{"percent": "10"}]))
    ingest([gpu(0, "36000"), _tokens("1500500000")])
    # when
    period = rate()
    # then each line states its list price and bills at the net one: quantity × net = amount
    # (h100: 10 h × 2.25 = 22.50; llama: 1,000 × 0.81 = 810.00, 500.5 × 0.63 = 315.315 → 315.32)
    assert _listed(period) == [
        ("h100", "on_demand", 0, D(10), D("2.50"), D("2.25"), D("22.50")),
        ("llama-in", "on_demand", 0, D(1000), D("0.90"), D("0.81"), D("810.00")),
        ("llama-in", "on_demand", 1, D("500.5"), D("0.70"), D("0.63"), D("315.32")),
    ]
    descriptions = list(RatedCharge.objects.filter(period=period).order_by("product__key", "line")
                        .values_list("description", flat=True))  # fmt: skip
    assert descriptions == [
        "10% off list price 2.50 (all products)",
        "tier 1: 0–1000; 10% off list price 0.90 (all products)",
        "tier 2: 1000–∞; 10% off list price 0.70 (all products)",
    ]


def test_a_discounted_volume_tier_keeps_its_own_list_price(catalog):
    catalog(contract(discounts=[{"product": "a100", "percent": "10"}]))
    ingest([gpu(0, "361800", model="A100")])  # 100.5 h, all at tier 2 (1.40 → 1.26)
    period = rate()
    assert _listed(period) == [
        ("a100", "on_demand", 1, D("100.5"), D("1.40"), D("1.26"), D("126.63")),
    ]


def test_a_discounted_package_keeps_the_list_price_of_a_block(catalog):
    # given H100 in blocks of 10 GPU-hours at 12.00, 10% off: 10.80 a block
    cards = [
        {"key": "list-usd", "currency": "USD", "effective_from": "2026-01-01", "prices": [
            {"product": "h100", "model": "package", "package_size": 10, "unit_price": "12.00"}]},
    ]  # fmt: skip
    catalog(contract(discounts=[{"product": "h100", "percent": "10"}]), rate_cards=cards)
    ingest([gpu(0, "36001")])  # 10.0003 h: 2 blocks
    period = rate()
    assert _listed(period) == [
        ("h100", "on_demand", 0, D(2), D("12.00"), D("10.80"), D("21.60")),
    ]


def test_a_discounted_burst_keeps_the_list_price_of_one_unit(catalog):
    # given no burst price and 10% off h100 (list 2.50 → 2.25): the burst is at 2.25
    res = _reservation(burst_unit_price=None, ramp=[])
    catalog(contract(reservations=[res], discounts=[{"product": "h100", "percent": "10"}]))
    ingest([gpu(0, "10800")])  # 3 used of 2: 1 burst
    period = rate()
    rows = {(kind, line): (listed, net) for _, kind, line, _, listed, net, _ in _listed(period)}
    # the reservation and its covered hours are at their own price: no list price
    assert rows == {
        ("burst", 0): (D("2.50"), D("2.25")),
        ("covered", 0): (None, D(0)),
        ("reservation", 0): (None, D("2.00")),
    }


def test_a_custom_price_or_the_list_price_states_no_list_price(catalog):
    catalog(contract(prices=[{"product": "a100", "unit_price": "1.10"}]))
    ingest([gpu(0, "36000", model="A100"), gpu(0, "36000")])
    period = rate()
    assert _listed(period) == [
        ("a100", "on_demand", 0, D(10), None, D("1.10"), D("11.00")),
        ("h100", "on_demand", 0, D(10), None, D("2.50"), D("25.00")),
    ]


def test_the_on_demand_usage_of_all_products_is_read_in_one_query(catalog):
    """Issue 18 (SPEC §9): the usage of an org's products without reservations is summed in
    one query over the rollups however many products it uses, each product's own usage."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    catalog(contract())
    ingest([gpu(0, "3600"), gpu(1, "7200", model="A100"), gpu(2, "1800"), _tokens("2000000")])
    with CaptureQueriesContext(connection) as queries:
        period = rate()
    assert [c[:4] for c in charges(period)] == [
        ("a100", "on_demand", 0, D(2)),
        ("h100", "on_demand", 0, D("1.5")),
        ("llama-in", "on_demand", 0, D(2)),
    ]
    rollups = [q["sql"] for q in queries.captured_queries if "metering_hourlyrollup" in q["sql"]]
    assert len(rollups) == 1
