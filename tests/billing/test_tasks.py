"""Rating in batches (issue 18, SPEC §9): ``billing.rate_periods`` rates a batch of periods,
each in its own transaction and isolated (SPEC §8), reading what they share once;
``billing.rate_due`` enqueues the due periods in batches, in org order."""

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import tasks
from billing.models import BillingPeriod, Contract, RatedCharge, ReservationUsage
from billing.rating.batch import RatingBatch
from billing.rating.due import in_batches, periods_due, periods_due_by_org
from billing.rating.engine import batch_prepare
from billing.rating.periods import periods_ensure
from billing.services import period_rate, periods_rate
from billing.tasks import period_unit, rate_due, rate_periods
from metering.models import HourlyRollup, QuarantinedWork

from .conftest import CATALOG, charges, contract, gpu, ingest, the_period

AS_OF = "2026-10-05T00:00:00Z"  # after the two-day period
ORGS = ["acme", "globex", "initech", "umbrella", "wonka"]


def _reservation() -> dict[str, Any]:
    return {"product": "h100", "quantity": 2, "unit_price": "2.00", "burst_unit_price": "3.00",
            "ramp": [{"from": "2026-10-02", "quantity": 4}]}  # fmt: skip


def _five_contracts(catalog: Any, **sections: Any) -> None:
    orgs = [{"slug": s, "name": s.title(), "country": "FR", "currency": "USD"} for s in ORGS]
    catalog(
        *(
            contract(key=f"{slug}-c", org=slug,
                     reservations=[_reservation()] if slug in ("acme", "initech") else [])
            for slug in ORGS
        ),
        orgs=orgs,
        **sections,
    )  # fmt: skip


@pytest.fixture
def five_orgs(catalog: Any) -> None:
    """Five orgs on the two-day October contract: acme and initech with a reservation; each
    with its own usage of H100 (reserved or not) and A100."""
    _five_contracts(catalog)
    events = []
    for i, slug in enumerate(ORGS, start=1):
        events += [
            gpu(0, str(3600 * i), org=slug),
            gpu(2, str(1800 * i), org=slug),
            gpu(30, str(18000 + i), org=slug),
            gpu(5, str(7200 * i), org=slug, model="A100"),
        ]
    ingest(events)
    for c in Contract.objects.all():
        periods_ensure(contract=c, through=datetime(2026, 10, 5, tzinfo=UTC))


def stored() -> list[tuple[Any, ...]]:
    """Every rated row and period figure, as the checksum of the bench reads them."""
    charges_ = RatedCharge.objects.order_by("org_id", "product_id", "kind", "line").values_list(
        "org_id", "product_id", "kind", "line", "quantity", "unit_price", "list_unit_price",
        "amount", "description",
    )  # fmt: skip
    usage = ReservationUsage.objects.order_by("org_id", "reservation_id").values_list(
        "org_id", "reserved", "used", "covered", "burst", "hours"
    )
    periods = BillingPeriod.objects.order_by("pk").values_list(
        "pk", "status", "subtotal", "forecast", "usage", "rated_as_of"
    )
    return [*charges_, *usage, *periods]


def period_ids() -> list[int]:
    return list(BillingPeriod.objects.order_by("org_id", "start").values_list("pk", flat=True))


@pytest.mark.usefixtures("five_orgs")
def test_a_batch_rates_every_period_as_rating_each_alone_does():
    ids = period_ids()

    assert rate_periods.apply(args=(ids, AS_OF)).get() == 5

    batched = stored()
    assert BillingPeriod.objects.filter(rated_at__isnull=True).count() == 0
    assert charges(the_period("acme")) == [
        # reserved 2 then 4: 48 + 96 = 144 × 2.00; used 1, 0.5 (hours 0, 2) and 5.0003 (hour
        # 30: 1.0003 burst at 3.00)
        ("h100", "burst", 0, D("1.000277777778"), D("3.00"), D("3.00")),
        ("h100", "covered", 0, D("5.5"), D(0), D(0)),
        ("a100", "on_demand", 0, D(2), D("1.60"), D("3.20")),
        ("h100", "reservation", 0, D(144), D("2.00"), D("288.00")),
    ]
    assert charges(the_period("globex"))[1] == (
        "h100", "on_demand", 0, D("8.000555555556"), D("2.50"), D("20.00"),
    )  # fmt: skip
    # rating each period alone, as rate_period does, gives the very same rows
    for pk in ids:
        period_rate(period_id=pk, as_of=datetime(2026, 10, 5, tzinfo=UTC))
    assert stored() == batched


@pytest.mark.usefixtures("five_orgs")
def test_a_batch_reads_the_rollups_in_three_queries_whatever_its_size():
    with CaptureQueriesContext(connection) as queries:
        outcomes = periods_rate(period_ids=period_ids(), as_of=datetime(2026, 10, 5, tzinfo=UTC))
    assert list(outcomes.values()) == [True] * 5
    rollups = [q["sql"] for q in queries.captured_queries if "metering_hourlyrollup" in q["sql"]]
    # the on-demand totals of the orgs with a reservation (of a100 and llama-in) and of those
    # without (h100 too), and the reserved product's hours of acme and initech
    assert len(rollups) == 3
    prices = [q for q in queries.captured_queries if 'FROM "billing_price"' in q["sql"]]
    assert len(prices) == 1


@pytest.mark.postgres
@pytest.mark.usefixtures("five_orgs")
def test_a_failing_period_is_quarantined_and_the_rest_of_its_batch_is_rated():
    """Bad data written straight into initech's rollups (bypassing validation): its charge does
    not fit the rating's decimal arithmetic."""
    HourlyRollup.objects.filter(org__slug="initech").update(value=D("1e25"))
    ids = period_ids()
    initech = the_period("initech")

    assert rate_periods.apply(args=(ids, AS_OF)).get() == 4

    assert not RatedCharge.objects.filter(org__slug="initech").exists()
    assert the_period("initech").rated_at is None  # rolled back, not half-rated
    [entry] = QuarantinedWork.objects.filter(kind="rating", resolved_at__isnull=True)
    assert (entry.org.slug, entry.unit, entry.hour) == ("initech", period_unit(initech.pk),
                                                        initech.start)  # fmt: skip
    assert entry.error.startswith("InvalidOperation")
    for slug in ("acme", "globex", "umbrella", "wonka"):  # before and after it in the batch
        assert the_period(slug).rated_at is not None, slug
        assert RatedCharge.objects.filter(org__slug=slug).count() >= 2, slug

    # once the data is right, the next batch rates it and resolves its quarantine
    HourlyRollup.objects.filter(org__slug="initech").update(value=D(3600))
    assert rate_periods.apply(args=([initech.pk], AS_OF)).get() == 1
    assert the_period("initech").rated_at is not None
    assert not QuarantinedWork.objects.filter(resolved_at__isnull=True).exists()


@pytest.mark.usefixtures("five_orgs")
def test_usage_that_changes_after_the_batch_read_it_is_read_again_in_the_rating():
    as_of = datetime(2026, 10, 5, tzinfo=UTC)
    acme = the_period("acme")
    batch = RatingBatch()
    batch_prepare(batch=batch, periods=list(BillingPeriod.objects.all()), as_of=as_of)
    # late usage lands (and stamps the period) after the batch's reads, before acme's rating
    ingest([gpu(40, "36000", n=1)], now=as_of)

    period_rate(period_id=acme.pk, as_of=as_of, batch=batch)

    assert ("h100", "burst", 0, D("7.000277777778"), D("3.00"), D("21.00")) in charges(
        the_period("acme")
    )
    # and the period stays due: its rating started before the change
    assert acme.pk in periods_due(now=timezone.now())


def test_in_batches_keeps_each_orgs_periods_together():
    due = [(1, 10), (2, 10), (3, 11), (4, 12), (5, 12), (6, 12), (7, 13)]
    assert in_batches(due, 3) == [[1, 2, 3], [4, 5, 6], [7]]
    assert in_batches(due, 2) == [[1, 2], [3], [4, 5, 6], [7]]  # an org larger than a batch
    assert in_batches([], 50) == []


@pytest.mark.usefixtures("five_orgs")
def test_rate_due_enqueues_every_due_period_once_in_batches_in_org_order(settings, monkeypatch):
    settings.TESSERA_RATING_BATCH = 4
    # acme and globex have a second period (a contract to the end of November)
    Contract.objects.filter(org__slug__in=("acme", "globex")).update(end="2026-12-01")
    for c in Contract.objects.filter(org__slug__in=("acme", "globex")):
        periods_ensure(contract=c, through=datetime(2026, 11, 5, tzinfo=UTC))
    due = periods_due_by_org(now=timezone.now())
    assert len(due) == 7
    sent: list[list[int]] = []
    monkeypatch.setattr(tasks.rate_periods, "delay", sent.append)

    assert rate_due.apply().get() == 7

    assert [pk for batch in sent for pk in batch] == [pk for pk, _ in due]  # each once, in order
    org_of = dict(due)
    assert [[org_of[pk] for pk in batch] for batch in sent] == [
        [org_of[pk] for pk in batch] for batch in in_batches(due, 4)
    ]
    assert [len(batch) for batch in sent] == [4, 3]  # acme's 2 + globex's 2; the other 3


def test_a_batch_of_mixed_periods_rates_each_as_rating_it_alone_does(catalog):
    """Two periods of one org in one batch (one closed, one open as of mid-November, so its
    hours stop at the horizon), dated terms cutting both, a reservation on one org only:
    the batch's shared reads give each period exactly what its own reads give."""
    orgs = [{"slug": s, "name": s.title(), "country": "FR", "currency": "USD"} for s in ORGS[:3]]
    discounts = [{"product": "h100", "percent": "10", "from": "2026-10-20", "until": "2026-11-10"},
                 {"product": "h100", "percent": "20", "from": "2026-11-10"}]  # fmt: skip
    catalog(
        contract(key="acme-c", org="acme", end="2026-12-01", discounts=discounts),
        contract(key="globex-c", org="globex", end="2026-12-01",
                 reservations=[{**_reservation(), "end": "2026-12-01"}]),
        contract(key="initech-c", org="initech", end="2026-12-01"),
        orgs=orgs,
    )  # fmt: skip
    day0 = datetime(2026, 10, 1, tzinfo=UTC)
    events = [
        gpu(hour, str(1800 + hour), org=slug, day0=day0, model=model)
        for slug in ORGS[:3]
        for hour in range(0, 24 * 44, 7)
        for model in ("H100", "A100")
    ]
    # each month's events ingested while they are within the late window
    for month, now in (
        ("10", datetime(2026, 11, 1, tzinfo=UTC)),
        ("11", datetime(2026, 11, 15, tzinfo=UTC)),
    ):
        ingest([e for e in events if e["time"][5:7] == month], now=now)
    as_of = datetime(2026, 11, 14, 12, 30, tzinfo=UTC)
    for c in Contract.objects.all():
        periods_ensure(contract=c, through=as_of)
    ids = period_ids()
    assert len(ids) == 6

    with CaptureQueriesContext(connection) as queries:
        assert list(periods_rate(period_ids=ids, as_of=as_of).values()) == [True] * 6
    batched = stored()
    # every rollup was read for the batch, before the first period was locked (PostgreSQL:
    # SQLite has no row locks, select_for_update issues a plain SELECT there)
    if connection.vendor == "postgresql":
        sql = [q["sql"] for q in queries.captured_queries]
        first_lock = next(i for i, q in enumerate(sql) if "FOR UPDATE" in q)
        assert [i for i, q in enumerate(sql) if "metering_hourlyrollup" in q][-1] < first_lock
    assert RatedCharge.objects.exclude(description="").exists()  # the terms' lines name them
    for pk in ids:
        period_rate(period_id=pk, as_of=as_of)
    assert stored() == batched


@pytest.mark.usefixtures("five_orgs")
def test_a_price_reloaded_after_the_batch_read_it_is_rated(
    catalog, django_capture_on_commit_callbacks
):
    """Finance reloads the catalog (H100 from 2.50 to 3.00) while a batch is under way: a
    period whose rating used the batch's earlier reads must be due again (SPEC §6: the next
    rating bills the price in force), not left at the old price once rated through its end."""
    as_of = datetime(2026, 10, 5, tzinfo=UTC)
    umbrella = the_period("umbrella")
    batch = RatingBatch()
    batch_prepare(batch=batch, periods=list(BillingPeriod.objects.all()), as_of=as_of)
    cards = [dict(c) for c in CATALOG["rate_cards"]]
    cards[0]["prices"] = [{**cards[0]["prices"][0], "unit_price": "3.00"}, *cards[0]["prices"][1:]]
    with django_capture_on_commit_callbacks(execute=True):
        _five_contracts(catalog, rate_cards=cards)

    period_rate(period_id=umbrella.pk, as_of=as_of, batch=batch)
    # whatever this rating read, the next run of what is due bills the new price
    periods_rate(period_ids=periods_due(now=timezone.now()), as_of=as_of)

    assert charges(the_period("umbrella"))[1] == (
        "h100", "on_demand", 0, D("11.001111111111"), D("3.00"), D("33.00"),
    )  # fmt: skip


@pytest.mark.usefixtures("five_orgs")
def test_a_discount_reloaded_after_the_batch_read_the_terms_is_rated(
    catalog, django_capture_on_commit_callbacks
):
    """The same for a contract's own terms (a discount) changed by a catalog reload."""
    as_of = datetime(2026, 10, 5, tzinfo=UTC)
    globex = the_period("globex")
    batch = RatingBatch()
    batch_prepare(batch=batch, periods=list(BillingPeriod.objects.all()), as_of=as_of)
    orgs = [{"slug": s, "name": s.title(), "country": "FR", "currency": "USD"} for s in ORGS]
    with django_capture_on_commit_callbacks(execute=True):
        catalog(
            *(
                contract(key=f"{slug}-c", org=slug,
                         reservations=[_reservation()] if slug in ("acme", "initech") else [],
                         discounts=[{"product": "h100", "percent": "50"}] if slug == "globex"
                         else [])
                for slug in ORGS
            ),
            orgs=orgs,
        )  # fmt: skip

    period_rate(period_id=globex.pk, as_of=as_of, batch=batch)
    periods_rate(period_ids=periods_due(now=timezone.now()), as_of=as_of)

    assert charges(the_period("globex"))[1] == (
        "h100", "on_demand", 0, D("8.000555555556"), D("1.25"), D("10.00"),
    )  # fmt: skip


@pytest.mark.usefixtures("five_orgs")
def test_reloading_an_unchanged_catalog_leaves_rated_periods_alone(
    catalog, django_capture_on_commit_callbacks
):
    as_of = datetime(2026, 10, 5, tzinfo=UTC)
    periods_rate(period_ids=period_ids(), as_of=as_of)
    assert periods_due(now=as_of) == []
    with django_capture_on_commit_callbacks(execute=True):
        _five_contracts(catalog)
    assert periods_due(now=as_of) == []


@pytest.mark.usefixtures("five_orgs")
def test_a_batch_rates_an_org_without_any_usage_as_rating_it_alone_does():
    """An org with no rollups at all is absent from the grouped reads: its zeros must be
    the very zeros its own reads give (quantities, lines, usage, forecast)."""
    HourlyRollup.objects.filter(org__slug__in=("globex", "initech")).delete()
    as_of = datetime(2026, 10, 2, 7, 30, tzinfo=UTC)  # open: the forecast scales the hours
    assert all(periods_rate(period_ids=period_ids(), as_of=as_of).values())
    batched = stored()
    for pk in period_ids():
        period_rate(period_id=pk, as_of=as_of)
    assert stored() == batched
    assert [str(v) for row in batched for v in row] == [str(v) for row in stored() for v in row]


@pytest.mark.usefixtures("five_orgs")
def test_a_batch_whose_shared_reads_fail_rates_each_period_from_its_own(monkeypatch):
    import billing.rating.engine as engine

    def broken(**_: Any) -> None:
        raise RuntimeError("the grouped read failed")

    monkeypatch.setattr(engine, "orgs_hourly_usage", broken)
    as_of = datetime(2026, 10, 5, tzinfo=UTC)
    assert list(periods_rate(period_ids=period_ids(), as_of=as_of).values()) == [True] * 5
    batched = stored()
    assert not QuarantinedWork.objects.exists()
    for pk in period_ids():
        period_rate(period_id=pk, as_of=as_of)
    assert stored() == batched
