"""Laws of rating (hypothesis): idempotent, blind to event order and batching, and with
per-unit prices and no reservations the total is usage × price rounded once per line."""

import random
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import BillingPeriod, RatedCharge, ReservationUsage
from billing.services import org_rate
from tenancy.models import Org

from .conftest import contract, gpu, ingest

END = datetime(2026, 10, 3, tzinfo=UTC)
PROPERTY = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# (hour of the 48, GPU-seconds, model)
usage = st.lists(
    st.tuples(
        st.integers(0, 47),
        st.integers(1, 4 * 3600),
        st.sampled_from(["H100", "A100"]),
    ),
    min_size=1,
    max_size=25,
)


def _events(rows, org="acme"):
    return [gpu(h, str(s), org=org, n=i, model=m) for i, (h, s, m) in enumerate(rows)]


def _rated(slug):
    org = Org.objects.get(slug=slug)
    org_rate(org=org, as_of=END)
    period = BillingPeriod.objects.get(org=org)
    return (
        [
            (
                c.product.key if c.product else None,
                c.kind,
                c.line,
                c.quantity,
                c.unit_price,
                c.amount,
                c.currency,
            )
            for c in RatedCharge.objects.filter(period=period)
            .select_related("product")
            .order_by("product__key", "kind", "line")
        ],
        [
            (u.reserved, u.used, u.covered, u.burst, u.hours)
            for u in ReservationUsage.objects.filter(period=period)
        ],
        period.subtotal,
    )


@pytest.fixture
def rollback():
    """Each hypothesis example runs in a savepoint that is rolled back."""

    class Rollback:
        def __enter__(self):
            self.atomic = transaction.atomic()
            self.atomic.__enter__()

        def __exit__(self, *exc):
            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)

    return Rollback


@PROPERTY
@given(rows=usage, reserved=st.integers(1, 3))
def test_rating_twice_gives_the_same_charges(catalog, rollback, rows, reserved):
    with rollback():
        res = {"product": "h100", "quantity": reserved, "unit_price": "1.70",
               "ramp": [{"from": "2026-10-02", "quantity": reserved + 1}]}  # fmt: skip
        catalog(contract(reservations=[res], discounts=[{"percent": "7.5"}]))
        ingest(_events(rows))
        first = _rated("acme")
        second = _rated("acme")
        assert first == second
        assert RatedCharge.objects.count() == len(first[0])


@PROPERTY
@given(rows=usage, seed=st.integers(0, 2**32), batches=st.integers(1, 5))
def test_rating_is_independent_of_event_order_and_batching(catalog, rollback, rows, seed, batches):
    with rollback():
        res = {"product": "h100", "quantity": 1, "unit_price": "2.00", "burst_unit_price": "3.10"}
        catalog(
            contract(reservations=[res]),
            contract(key="globex-c", org="globex", reservations=[res]),
        )
        # acme: one batch in order; globex: the same usage shuffled and split into batches
        ingest(_events(rows, "acme"))
        shuffled = _events(rows, "globex")
        random.Random(seed).shuffle(shuffled)
        for i in range(batches):
            part = shuffled[i::batches]
            if part:
                ingest(part, now=END)
        assert _rated("acme") == _rated("globex")


@PROPERTY
@given(rows=usage)
def test_per_unit_total_is_usage_times_price_rounded_once_per_line(catalog, rollback, rows):
    with rollback():
        cards = [
            {"key": "list-usd", "currency": "USD", "effective_from": "2026-01-01", "prices": [
                {"product": "h100", "model": "per_unit", "unit_price": "2.345678901234"},
                {"product": "a100", "model": "per_unit", "unit_price": "0.000001"}]},
        ]  # fmt: skip
        catalog(contract(), rate_cards=cards)
        ingest(_events(rows))
        _, _, subtotal = _rated("acme")
        expected = D(0)
        for model, price in (("H100", D("2.345678901234")), ("A100", D("0.000001"))):
            seconds = sum(s for _, s, m in rows if m == model)
            if seconds:
                quantity = (D(seconds) / 3600).quantize(D("1e-12"), rounding=ROUND_HALF_UP)
                expected += (quantity * price).quantize(D("0.01"), rounding=ROUND_HALF_UP)
        assert subtotal == expected
