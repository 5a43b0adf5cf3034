import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.ingestion import Ingestor
from metering.models import HourlyRollup, Meter, RollupMark
from metering.rollups import rollup_pending
from metering.selectors import usage_series
from tenancy.models import ApiKey
from tenancy.services import api_key_create

from ..conftest import make_event
from ..factories import MeterFactory

BASE = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def collector(db: None) -> ApiKey:
    return api_key_create(name="collector").api_key


@pytest.fixture
def meters(db: None) -> dict[str, Any]:
    common = {"event_type": "job.metric", "group_by": {"zone": "$.zone"}}
    return {
        agg: MeterFactory.create(
            key=f"m-{agg}", aggregation=agg, value_path="" if agg == "count" else "$.v", **common
        )
        for agg in ("sum", "count", "max", "unique_count", "latest")
    }


def ingest(collector: ApiKey, events: list[dict[str, Any]], now: datetime = BASE) -> Any:
    return Ingestor(api_key=collector, now=now + timedelta(days=3)).ingest(events)


def metric(i: int, when: datetime, v: Any, zone: str = "a", source: str = "s") -> dict[str, Any]:
    return make_event(
        id=f"m{i}", time=when, type="job.metric", source=source, data={"v": v, "zone": zone}
    )


def direct(events: list[dict[str, Any]], agg: str, bucket: Any) -> dict[Any, Decimal]:
    """The meter's aggregate computed straight from the raw events, per bucket."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        groups[bucket(e)].append(e)
    out: dict[Any, Decimal] = {}
    for key, members in groups.items():
        values = [Decimal(str(m["data"]["v"])) for m in members]
        if agg == "sum":
            out[key] = sum(values, Decimal(0))
        elif agg == "count":
            out[key] = Decimal(len(members))
        elif agg == "max":
            out[key] = max(values)
        elif agg == "unique_count":
            out[key] = Decimal(len({str(m["data"]["v"]) for m in members}))
        else:
            latest = max(members, key=lambda m: (m["time"], m["source"], m["id"]))
            out[key] = Decimal(str(latest["data"]["v"]))
    return out


def series(
    meter: Meter, org: Any, window: Any, group_by: tuple[str, ...] = ()
) -> dict[Any, Decimal]:
    points = usage_series(
        org=org,
        meter=meter,
        start=BASE,
        end=BASE + timedelta(days=2),
        window=window,
        group_by=group_by,
    )
    return {(p.start, tuple(p.dimensions.values())): p.value for p in points}


@pytest.mark.parametrize("agg", ["sum", "count", "max", "unique_count", "latest"])
def test_every_aggregation_matches_a_direct_computation_per_hour_day_and_zone(
    org, collector, meters, agg
):
    rng = random.Random(7)
    events = [
        metric(
            i,
            BASE + timedelta(minutes=rng.randrange(0, 36 * 60)),
            rng.choice([1, 2, 3, "4.5", 7, 10]),
            zone=rng.choice(["a", "b"]),
        )
        for i in range(300)
    ]
    ingest(collector, events)
    rollup_pending()
    meter = meters[agg]

    def hour_of(e: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(e["time"]).replace(minute=0, second=0, microsecond=0)

    def day_of(e: dict[str, Any]) -> datetime:
        return hour_of(e).replace(hour=0)

    assert series(meter, org, "hour", ("zone",)) == direct(
        events, agg, lambda e: (hour_of(e), (e["data"]["zone"],))
    )
    assert series(meter, org, "day") == direct(events, agg, lambda e: (day_of(e), ()))
    assert series(meter, org, "day", ("zone",)) == direct(
        events, agg, lambda e: (day_of(e), (e["data"]["zone"],))
    )
    assert series(meter, org, "month") == direct(events, agg, lambda e: (BASE.replace(day=1), ()))


def test_max_and_unique_count_over_a_day_are_not_sums_of_hours(org, collector, meters):
    events = [
        metric(1, BASE + timedelta(hours=1), 5),
        metric(2, BASE + timedelta(hours=2), 5),
        metric(3, BASE + timedelta(hours=3), 3),
    ]
    ingest(collector, events)
    rollup_pending()

    assert series(meters["max"], org, "day") == {(BASE, ()): Decimal(5)}
    assert series(meters["unique_count"], org, "day") == {(BASE, ()): Decimal(2)}
    assert series(meters["latest"], org, "day") == {(BASE, ()): Decimal(3)}


def test_latest_breaks_ties_on_time_by_source_then_id(org, collector, meters):
    when = BASE + timedelta(minutes=10)
    ingest(collector, [metric(1, when, 1, source="b"), metric(2, when, 2, source="a")])
    rollup_pending()

    assert series(meters["latest"], org, "hour") == {(BASE, ()): Decimal(1)}


def test_a_late_event_updates_its_old_hours_rollup_and_only_that_hour(org, collector, gpu_meter):
    old_hour, recent_hour = BASE, BASE + timedelta(days=1)
    ingest(collector, [make_event(id="a", time=old_hour), make_event(id="b", time=recent_hour)])
    rollup_pending()
    untouched = HourlyRollup.objects.get(hour=recent_hour).updated_at

    ingest(collector, [make_event(id="late", time=old_hour + timedelta(minutes=59))])
    assert list(RollupMark.objects.values_list("hour", flat=True)) == [old_hour]
    rollup_pending()

    assert HourlyRollup.objects.get(hour=old_hour).value == Decimal(120)
    assert HourlyRollup.objects.get(hour=old_hour).event_count == 2
    assert HourlyRollup.objects.get(hour=recent_hour).updated_at == untouched
    assert RollupMark.objects.count() == 0


def test_rollup_with_nothing_pending_changes_nothing(org, collector, gpu_meter):
    ingest(collector, [make_event(id="a", time=BASE)])
    rollup_pending()
    before = list(HourlyRollup.objects.values())

    assert rollup_pending() == 0
    assert list(HourlyRollup.objects.values()) == before


def test_rollup_works_through_small_batches(org, collector, gpu_meter):
    ingest(collector, [make_event(id=f"e{h}", time=BASE + timedelta(hours=h)) for h in range(7)])

    assert rollup_pending(batch_hours=2) == 7
    assert HourlyRollup.objects.count() == 7


def _snapshot() -> list[tuple[Any, ...]]:
    return sorted(
        HourlyRollup.objects.values_list("meter__key", "hour", "dims_key", "value", "event_count")
    )


event_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=47 * 60),  # minute offset within two days
        st.sampled_from(["1", "2.5", "7", "0.000001", "3600"]),
        st.sampled_from(["a", "b", "c"]),
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=event_strategy, seed=st.integers(0, 10_000), data=st.data())
def test_splitting_reordering_and_duplicating_leaves_rollups_identical(
    org, collector, meters, rows, seed, data
):
    events = [
        metric(i, BASE + timedelta(minutes=minute), value, zone=zone)
        for i, (minute, value, zone) in enumerate(rows)
    ]
    with transaction.atomic():
        ingest(collector, events)
        rollup_pending()
        expected = _snapshot()
        transaction.set_rollback(True)

    rng = random.Random(seed)
    stream = events + [rng.choice(events) for _ in range(len(events) // 2)]
    rng.shuffle(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    with transaction.atomic():
        for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            ingest(collector, stream[start:end])
            if rng.random() < 0.5:
                rollup_pending()
        rollup_pending()
        assert _snapshot() == expected
        transaction.set_rollback(True)
