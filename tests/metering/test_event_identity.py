"""Issue 11 case 6, SPEC §3: identity is (source, id) within the credential's namespace.

Collector keys share the platform namespace; an org's keys write in that org's namespace
only, so an org can never occupy, block or detect a platform identity or another org's."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from metering.models import HourlyRollup, UsageEvent
from metering.rollups import dims_key, rollup_pending
from tenancy.services import api_key_create

from ..conftest import make_event

URL = "/api/v1/events"
BATCH = "application/cloudevents-batch+json"
SOURCE = "tessera-gpu-collector/eu-north-gpu-1"

pytestmark = pytest.mark.usefixtures("gpu_meter")


def post(client: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post(URL, data=json.dumps(events), content_type=BATCH)
    assert response.status_code == 202
    return response.json()


def collector_event(seconds: str = "3600", subject: str = "acme") -> dict[str, Any]:
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    stamp = start.isoformat().replace("+00:00", "Z")
    return make_event(
        id=f"eu-north-gpu-1/GPU-5f3a/{stamp}/acme",
        source=SOURCE,
        subject=subject,
        time=stamp,
        data={"gpu_seconds": seconds, "gpu_model": "H100", "region": "eu-north"},
    )


def totals() -> dict[str, Decimal]:
    rollup_pending()
    out: dict[str, Decimal] = {}
    for slug, value in HourlyRollup.objects.values_list("org__slug", "value"):
        out[slug] = out.get(slug, Decimal(0)) + value
    return out


def test_an_org_key_cannot_occupy_a_collector_identity(client_for, org, collector_key):
    squatter = client_for(api_key_create(name="own", org=org, scope="ingest").raw_key)

    squat = post(squatter, [collector_event(seconds="0")])
    real = post(client_for(collector_key), [collector_event()])

    assert (squat["accepted"], real["accepted"], real["rejected"]) == (1, 1, 0)
    assert sorted(UsageEvent.objects.values_list("namespace", flat=True)) == [
        f"org:{org.pk}",
        "platform",
    ]
    assert totals() == {"acme": Decimal(3600)}


def test_an_org_key_cannot_detect_a_collector_identity(client_for, org, collector_key):
    """The answer to an org key is the same whether or not the platform used the identity."""
    own = client_for(api_key_create(name="own", org=org, scope="ingest").raw_key)
    before = post(own, [{**collector_event(), "id": "never-used-by-the-platform"}])
    post(client_for(collector_key), [collector_event()])

    after = post(own, [collector_event()])

    assert before == after == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}


def test_a_collector_event_under_another_subject_is_one_event(
    client_for, org, other_org, collector_key
):
    second_collector = api_key_create(name="collector-2").raw_key
    event = collector_event()

    first = post(client_for(collector_key), [event])
    again = post(client_for(second_collector), [{**event, "subject": "globex"}])
    same_batch = post(client_for(collector_key), [event, {**event, "subject": "globex"}])

    assert first["accepted"] == 1
    assert again == {"accepted": 0, "duplicates": 1, "rejected": 0, "errors": []}
    assert same_batch == {"accepted": 0, "duplicates": 2, "rejected": 0, "errors": []}
    assert totals() == {"acme": Decimal(3600)}


def test_a_reused_identity_with_other_data_is_refused_and_the_stored_event_kept(
    client_for, org, collector_key
):
    post(client_for(collector_key), [collector_event()])

    body = post(client_for(collector_key), [collector_event(seconds="7200")])

    assert body["rejected"] == 1
    assert [(p["field"], p["code"]) for p in body["errors"][0]["problems"]] == [
        ("id", "id_conflict")
    ]
    assert totals() == {"acme": Decimal(3600)}


def test_a_repeat_with_the_same_instant_written_otherwise_is_a_duplicate(
    client_for, org, collector_key
):
    event = collector_event()
    moment = datetime.fromisoformat(event["time"]) + timedelta(hours=1)
    shifted = {**event, "time": moment.isoformat().replace("+00:00", "+01:00")}

    post(client_for(collector_key), [event])
    body = post(client_for(collector_key), [shifted])

    assert body["duplicates"] == 1


def _written(event: dict[str, Any], seconds: Any) -> dict[str, Any]:
    return {**event, "data": {**event["data"], "gpu_seconds": seconds}}


@pytest.mark.parametrize("together", [True, False], ids=["one batch", "two batches"])
def test_a_repeat_is_judged_by_value_whether_in_the_same_batch_or_a_later_one(
    client_for, org, collector_key, together
):
    """The same quantity written `3600` and `3600.0` is one event, and other content is an
    id_conflict, whether the repeat comes in the same request or a later one (found by review:
    repeats within a batch used to be compared as text)."""
    event = _written(collector_event(), 3600)
    client = client_for(collector_key)
    batches = [[event, _written(event, 3600.0), _written(event, "7200")]]
    if not together:
        batches = [[event], batches[0][1:]]
    answers = [post(client, batch) for batch in batches]

    assert sum(a["accepted"] for a in answers) == 1
    assert sum(a["duplicates"] for a in answers) == 1
    errors = [e for a in answers for e in a["errors"]]
    assert [(p["field"], p["code"]) for e in errors for p in e["problems"]] == [
        ("id", "id_conflict")
    ]
    assert errors[0]["index"] == (2 if together else 1)
    assert totals() == {"acme": Decimal(3600)}


@pytest.mark.parametrize(
    ("first", "again", "same"),
    [
        (True, 1, False),
        (False, 0, False),
        (None, 0, False),
        ("1", 1, False),
        (1, 1.0, True),
        (-0.0, 0, True),
        ({"a": [1, {"b": 2.50}]}, {"a": [1.0, {"b": 2.5}]}, True),
        ([1, 2], [2, 1], False),
    ],
    ids=str,
)
def test_a_repeat_is_compared_like_jsonb_on_every_database(
    client_for, org, collector_key, first, again, same
):
    """By value as PostgreSQL's jsonb compares: a number equals the same number however
    written, and nothing else (not a boolean, a null or a string)."""
    event = collector_event()
    client = client_for(collector_key)
    post(client, [{**event, "data": {**event["data"], "extra": first}}])

    body = post(client, [{**event, "data": {**event["data"], "extra": again}}])

    assert (body["duplicates"], body["rejected"]) == ((1, 0) if same else (0, 1))


def test_repeats_in_a_batch_of_an_identity_stored_earlier_are_each_compared_with_it(
    client_for, org, collector_key
):
    event = collector_event()
    client = client_for(collector_key)
    post(client, [event])

    body = post(client, [_written(event, "7200"), _written(event, "7200"), event])

    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 1, 2)
    assert [e["index"] for e in body["errors"]] == [0, 1]
    assert totals() == {"acme": Decimal(3600)}


@pytest.mark.django_db(transaction=True)
def test_existing_events_get_the_namespace_of_the_key_that_could_have_sent_them():
    """Data migrations 0004 (namespaces) and 0006 (rollup key digests) on existing rows."""
    executor = MigrationExecutor(connection)
    executor.migrate([("metering", "0003_meter_allow_negative")])
    apps = executor.loader.project_state([("metering", "0003_meter_allow_negative")]).apps
    Org = apps.get_model("tenancy", "Org")
    ApiKey = apps.get_model("tenancy", "ApiKey")
    Event = apps.get_model("metering", "UsageEvent")
    Meter = apps.get_model("metering", "Meter")
    Rollup = apps.get_model("metering", "HourlyRollup")
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    acme = Org.objects.create(slug="acme", name="Acme", country="FR", currency="USD")
    globex = Org.objects.create(slug="globex", name="Globex", country="US", currency="USD")
    initech = Org.objects.create(slug="initech", name="Initech", country="FR", currency="EUR")
    keys = [
        ("collector", None, "collector", t0, None),
        ("org", globex, "ingest", t0 + timedelta(days=2), None),
        ("org", initech, "read", t0, None),
    ]
    for i, (kind, owner, scope, created, revoked) in enumerate(keys):
        key = ApiKey.objects.create(
            kind=kind, org=owner, scope=scope, name="k", prefix=f"p{i}", key_hash="h"
        )
        ApiKey.objects.filter(pk=key.pk).update(created_at=created, revoked_at=revoked)

    def event(org: Any, event_id: str, received: datetime, source: str = "s") -> Any:
        return Event.objects.create(
            org=org, source=source, event_id=event_id, type="gpu.usage", time=t0,
            data={}, content_hash="x", received_at=received,
        )  # fmt: skip

    only_collector = event(acme, "a", t0 + timedelta(days=1))
    before_own_key = event(globex, "b", t0 + timedelta(days=1))
    either = event(globex, "c", t0 + timedelta(days=3))
    read_key_only = event(initech, "d", t0 + timedelta(days=1))
    first_copy = event(acme, "dup", t0 + timedelta(days=1))
    second_copy = event(globex, "dup", t0 + timedelta(days=1, hours=1))
    meter = Meter.objects.create(key="m", event_type="gpu.usage", aggregation="sum")
    dims = {"gpu_model": "Ж" * 90}
    rollup = Rollup.objects.create(
        org=acme, meter=meter, hour=t0, dimensions=dims, dims_key="{}", value=1, event_count=1
    )

    executor = MigrationExecutor(connection)
    executor.migrate([("metering", "0006_rollup_dims_key_digest")])
    namespaces = dict(UsageEvent.objects.values_list("pk", "namespace"))
    digest = HourlyRollup.objects.get(pk=rollup.pk).dims_key
    # Forward again (partitioned events and their key table from 0008, with these rows in
    # them): the tests after this one need the latest schema.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert namespaces == {
        only_collector.pk: "platform",
        before_own_key.pk: "platform",
        either.pk: f"org:{globex.pk}",
        read_key_only.pk: "platform",
        first_copy.pk: "platform",
        second_copy.pk: f"org:{globex.pk}",
    }
    assert digest == dims_key(dims)
    assert UsageEvent.objects.count() == 6
