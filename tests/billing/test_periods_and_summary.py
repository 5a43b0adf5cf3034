from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from django.core.cache import cache
from django.db import transaction

from billing.models import BillingPeriod, Contract
from billing.rating.due import periods_due
from billing.rating.periods import period_bounds
from billing.rating.triggers import rollups_changed
from billing.services import org_rate
from billing.tasks import rate_due
from tenancy.models import Org
from tenancy.services import api_key_create

from .conftest import START, contract, gpu, ingest


@pytest.mark.parametrize(
    ("start", "end", "day", "expected"),
    [
        (date(2026, 10, 20), date(2027, 1, 1), 1, [
            (date(2026, 10, 20), date(2026, 11, 1)), (date(2026, 11, 1), date(2026, 12, 1)),
            (date(2026, 12, 1), date(2027, 1, 1))]),
        (date(2026, 11, 10), date(2027, 1, 3), 15, [
            (date(2026, 11, 10), date(2026, 11, 15)), (date(2026, 11, 15), date(2026, 12, 15)),
            (date(2026, 12, 15), date(2027, 1, 3))]),
        (date(2026, 12, 20), None, 28, [
            (date(2026, 12, 20), date(2026, 12, 28)), (date(2026, 12, 28), date(2027, 1, 28)),
            (date(2027, 1, 28), date(2027, 2, 28))]),
    ],
)  # fmt: skip
def test_periods_from_billing_day_with_partial_first_and_last(start, end, day, expected):
    c = Contract(start=start, end=end, billing_day=day)
    assert list(period_bounds(c, date(2027, 2, 1))) == expected


def test_summary_api_scoped_to_the_callers_org(catalog, client_for):
    # given 1 reserved H100 and 3 GPU-hours used in hour 0, rated halfway through
    res = {"product": "h100", "quantity": 1, "unit_price": "2.00"}
    catalog(contract(reservations=[res], credits=[{"key": "a", "amount": "10.00"}]))
    ingest([gpu(0, "10800")])
    acme = Org.objects.get(slug="acme")
    org_rate(org=acme, as_of=datetime(2026, 10, 2, tzinfo=UTC))
    key = api_key_create(name="r", org=acme, scope="read").raw_key
    # when
    from unittest import mock

    with mock.patch(
        "billing.selectors.timezone.now", return_value=datetime(2026, 10, 2, tzinfo=UTC)
    ):
        response = client_for(key).get("/api/v1/orgs/acme/summary")
        other = client_for(key).get("/api/v1/orgs/globex/summary")
    # then 24 h × 2.00 = 48.00 reserved + 2 h burst × 2.50 = 5.00
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["cost_so_far"] == "53.00"
    assert body["credits_applied"] == "10.00"
    assert body["credits"] == [{"key": "a", "amount": "10.00", "balance": "0.00",
                                "currency": "USD", "expires": None,
                                "applied_this_period": "10.00"}]  # fmt: skip
    [use] = body["reservations"]
    assert (use["reserved"], use["used"], use["covered"], use["utilization"]) == (
        "24.000000",
        "3.000000",
        "1.000000",
        "4.17",
    )
    assert "hours" not in use  # the hourly netting is paginated apart:
    hours = client_for(key).get("/api/v1/orgs/acme/reservation-hours?period=2026-10").json()
    assert hours["results"][0] == {
        "product": "h100",
        "hour": "2026-10-01T00:00:00Z",
        "reserved": "1",
        "used": "3",
    }
    assert len(hours["results"]) == 24
    assert hours["next"] is None
    assert body["products"] == [
        {"product": "h100", "name": "H100 GPU-hour", "unit": "GPU-hour", "usage": "3.000000",
         "amount": "53.00"}
    ]  # fmt: skip
    # forecast: 48 h × 2.00 = 96.00 + burst 2 h × 2 (run-rate) × 2.50 = 10.00
    assert body["forecast"] == "106.00"
    assert other.status_code == 403


def test_rollup_hook_marks_the_period_and_rating_catches_up(catalog, settings):
    catalog(contract())
    ingest([gpu(0, "3600")])
    acme = Org.objects.get(slug="acme")
    as_of = datetime(2026, 10, 2, tzinfo=UTC)
    org_rate(org=acme, as_of=as_of)
    period = BillingPeriod.objects.get(org=acme)
    assert period.subtotal == D("2.50")
    assert periods_due(now=as_of) == []
    # when new usage is rolled up, the rollup calls billing's hook (TESSERA_ROLLUP_HOOKS)
    ingest([gpu(1, "3600")])
    # then the period is due, and the beat task rates it
    assert periods_due(now=as_of) == [period.pk]
    with transaction.atomic():
        rate_due.delay()
    period.refresh_from_db()
    assert period.subtotal == D("5.00")


def test_rollup_hook_schedules_a_rating_after_commit(
    catalog, settings, django_capture_on_commit_callbacks
):
    settings.TESSERA_RATE_ON_ROLLUP = True
    catalog(contract())
    acme = Org.objects.get(slug="acme")
    cache.delete("tessera:rating-scheduled")  # an earlier test's debounce window may be open
    with django_capture_on_commit_callbacks() as callbacks:
        rollups_changed([(acme.pk, START)])
    assert len(callbacks) == 1


def test_rating_lag_counts_from_the_oldest_unrated_change(catalog, monkeypatch):
    from datetime import timedelta

    from billing.rating.due import rating_lag

    catalog(contract())
    ingest([gpu(0, "3600")])
    acme = Org.objects.get(slug="acme")
    org_rate(org=acme, as_of=datetime(2026, 10, 2, tzinfo=UTC))
    assert rating_lag()[2] == 0.0

    # The gauge reads the clock at scrape time: scrape at a known instant.
    scraped = datetime(2026, 10, 2, 12, tzinfo=UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: scraped)
    BillingPeriod.objects.filter(org=acme).update(
        rated_at=scraped - timedelta(minutes=10),
        usage_changed_at=scraped - timedelta(minutes=5),
    )

    assert rating_lag()[2] == 300.0
