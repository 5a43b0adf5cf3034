import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings

from metering.models import RollupMark, UsageEvent
from tenancy.services import api_key_create, api_key_revoke

from ..conftest import make_event

URL = "/api/v1/events"
BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"

pytestmark = pytest.mark.usefixtures("gpu_meter", "org")


def post(client: Any, payload: Any, content_type: str = BATCH) -> Any:
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return client.post(URL, data=body, content_type=content_type)


def test_single_event_is_accepted_and_stored(client_for, collector_key):
    response = post(client_for(collector_key), make_event(id="e1"), SINGLE)

    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}
    stored = UsageEvent.objects.get()
    assert (stored.source, stored.event_id, stored.org.slug) == ("node-1", "e1", "acme")
    assert stored.data == {"gpu_seconds": "60", "gpu_model": "H100", "region": "eu-north"}


def test_same_batch_posted_twice_stores_each_event_once(client_for, collector_key):
    batch = [make_event(id=f"e{i}") for i in range(5)]
    client = client_for(collector_key)

    first = post(client, batch)
    second = post(client, batch)

    assert first.json()["accepted"] == 5
    assert second.status_code == 202
    assert second.json() == {"accepted": 0, "duplicates": 5, "rejected": 0, "errors": []}
    assert UsageEvent.objects.count() == 5


def test_reused_id_with_other_content_is_rejected_and_stored_event_unchanged(
    client_for, collector_key
):
    client = client_for(collector_key)
    original = make_event(id="e1")
    post(client, [original])
    changed = {**original, "data": {**original["data"], "gpu_seconds": "3600"}}

    response = post(client, [changed])

    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 1)
    assert body["errors"][0]["index"] == 0
    assert body["errors"][0]["id"] == "e1"
    assert "already accepted with other content" in body["errors"][0]["reasons"][0]
    assert UsageEvent.objects.get().data["gpu_seconds"] == "60"


def test_duplicate_within_one_batch(client_for, collector_key):
    event = make_event(id="e1")
    other = {**event, "data": {**event["data"], "gpu_seconds": "1"}}

    body = post(client_for(collector_key), [event, event, other]).json()

    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert body["errors"][0]["index"] == 2
    assert UsageEvent.objects.count() == 1


def test_valid_events_are_kept_when_others_in_the_batch_are_rejected(client_for, collector_key):
    batch = [make_event(id="ok-1"), make_event(id="bad", subject="nobody"), make_event(id="ok-2")]

    body = post(client_for(collector_key), batch).json()

    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"] == [
        {
            "index": 1,
            "id": "bad",
            "reasons": ["subject 'nobody' is not a known org"],
            "problems": [
                {
                    "field": "subject",
                    "code": "unknown_subject",
                    "message": "subject 'nobody' is not a known org",
                }
            ],
        }
    ]
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {"ok-1", "ok-2"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"specversion": "0.3"}, "specversion must be '1.0', not '0.3'"),
        ({"id": ""}, "id must be a non-empty string"),
        ({"id": 7}, "id must be a non-empty string"),
        ({"source": ""}, "source must be a non-empty string"),
        ({"type": "disk.usage"}, "type 'disk.usage' is not measured by any meter"),
        ({"subject": ""}, "subject must be a non-empty string"),
        (
            {"time": "yesterday"},
            "time 'yesterday' is not an RFC 3339 timestamp (e.g. 2026-11-29T05:10:00Z or "
            "2026-11-29T06:10:00+01:00)",
        ),
        (
            {"time": "2026-11-01T10:00:00"},
            "time '2026-11-01T10:00:00' has no UTC offset; add 'Z' or an offset such as +01:00",
        ),
        ({"data": [1, 2]}, "data must be a JSON object"),
        (
            {"datacontenttype": "text/plain"},
            "datacontenttype must be 'application/json' when given",
        ),
        (
            {"data": {"gpu_model": "H100", "region": "eu-north"}},
            "data.gpu_seconds is required by meter 'gpu_time'",
        ),
        (
            {"data": {"gpu_seconds": "lots", "gpu_model": "H100", "region": "eu-north"}},
            "data.gpu_seconds 'lots' is not a number: use ASCII digits, an optional sign, "
            "decimal point and exponent (e.g. '3600' or '0.5')",
        ),
        (
            {"data": {"gpu_seconds": True, "gpu_model": "H100", "region": "eu-north"}},
            "data.gpu_seconds must be a number or a decimal string",
        ),
        (
            {"data": {"gpu_seconds": 1e30, "gpu_model": "H100", "region": "eu-north"}},
            "data.gpu_seconds is out of range (|value| must be below 10^15)",
        ),
    ],
)
def test_each_malformed_field_gets_its_own_reason(client_for, collector_key, change, reason):
    body = post(client_for(collector_key), [{**make_event(id="e1"), **change}]).json()

    assert body["rejected"] == 1
    assert body["errors"][0]["reasons"] == [reason]
    assert UsageEvent.objects.count() == 0


@pytest.mark.parametrize(
    "field", ["specversion", "id", "source", "type", "subject", "time", "data"]
)
def test_missing_required_attribute_is_named(client_for, collector_key, field):
    event = make_event(id="e1")
    del event[field]

    body = post(client_for(collector_key), [event]).json()

    assert f"{field} is required" in body["errors"][0]["reasons"]
    assert UsageEvent.objects.count() == 0


def test_several_problems_are_all_reported(client_for, collector_key):
    event = {"id": "x", "type": "foo", "subject": "nobody", "time": "2020-01-01T00:00:00"}

    reasons = post(client_for(collector_key), [event]).json()["errors"][0]["reasons"]

    assert reasons == [
        "specversion is required",
        "source is required",
        "data is required",
        "time '2020-01-01T00:00:00' has no UTC offset; add 'Z' or an offset such as +01:00",
        "type 'foo' is not measured by any meter",
        "subject 'nobody' is not a known org",
    ]


def test_events_outside_the_late_window_or_in_the_future_are_rejected(
    client_for, collector_key, settings
):
    settings.TESSERA_LATE_WINDOW_DAYS = 35
    now = datetime.now(UTC)
    old = make_event(id="old", time=now - timedelta(days=35, minutes=1))
    still_ok = make_event(id="late", time=now - timedelta(days=34, hours=23))
    future = make_event(id="future", time=now + timedelta(minutes=6))
    skew_ok = make_event(id="skew", time=now + timedelta(minutes=4))

    body = post(client_for(collector_key), [old, still_ok, future, skew_ok]).json()

    assert body["accepted"] == 2
    reasons = {e["id"]: e["reasons"][0] for e in body["errors"]}
    assert "older than the late window of 35 days" in reasons["old"]
    assert "more than 5 minutes in the future" in reasons["future"]
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {"late", "skew"}


def test_over_ten_thousand_events_is_413(client_for, collector_key):
    batch = [make_event(id=f"e{i}") for i in range(10_001)]

    response = post(client_for(collector_key), batch)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert "at most 10000 events" in response.json()["message"]
    assert UsageEvent.objects.count() == 0


@override_settings(TESSERA_MAX_BODY_BYTES=2000)
def test_body_over_the_byte_limit_is_413(client_for, collector_key):
    batch = [make_event(id=f"e{i}") for i in range(20)]

    response = post(client_for(collector_key), batch)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert UsageEvent.objects.count() == 0


def test_no_key_is_401(client):
    response = post(client, [make_event(id="e1")])

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert UsageEvent.objects.count() == 0


def test_unknown_key_is_401(client_for):
    response = post(client_for("tsk_000000000000_nope"), [make_event(id="e1")])

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_revoked_key_is_401(client_for, org):
    issued = api_key_create(name="k", org=org, scope="ingest")
    api_key_revoke(api_key=issued.api_key)

    response = post(client_for(issued.raw_key), [make_event(id="e1")])

    assert response.status_code == 401
    assert response.json()["message"] == "This API key has been revoked."
    assert UsageEvent.objects.count() == 0


def test_org_key_reports_only_for_its_own_org(client_for, org, other_org):
    key = api_key_create(name="k", org=org, scope="ingest").raw_key
    batch = [make_event(id="mine"), make_event(id="theirs", subject="globex")]

    body = post(client_for(key), batch).json()

    assert body["accepted"] == 1
    assert body["errors"][0]["index"] == 1
    assert body["errors"][0]["reasons"] == [
        "this key may only report usage for org 'acme', not 'globex'"
    ]
    assert body["errors"][0]["problems"][0]["code"] == "forbidden_subject"
    assert list(UsageEvent.objects.values_list("org__slug", flat=True)) == ["acme"]


def test_collector_key_reports_for_any_existing_org(client_for, collector_key, other_org):
    batch = [make_event(id="a"), make_event(id="b", subject="globex")]

    body = post(client_for(collector_key), batch).json()

    assert body["accepted"] == 2


def test_read_key_cannot_ingest(client_for, org):
    key = api_key_create(name="k", org=org, scope="read").raw_key

    response = post(client_for(key), [make_event(id="e1")])

    assert response.status_code == 403
    assert UsageEvent.objects.count() == 0


def test_same_id_from_two_orgs_own_keys_is_two_events(client_for, org, other_org):
    """Each org's keys have their own namespace: one org's ids never collide with another's."""
    acme = api_key_create(name="k", org=org, scope="ingest").raw_key
    globex = api_key_create(name="k", org=other_org, scope="ingest").raw_key

    first = post(client_for(acme), [make_event(id="e1")]).json()
    second = post(client_for(globex), [make_event(id="e1", subject="globex")]).json()

    assert (first["accepted"], second["accepted"]) == (1, 1)
    assert sorted(UsageEvent.objects.values_list("namespace", flat=True)) == [
        f"org:{org.pk}",
        f"org:{other_org.pk}",
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe[]", "malformed_json"),
        (b'[{"a": NaN}]', "malformed_json"),
        (b'[{"id": "a", "id": "b"}]', "malformed_json"),
    ],
)
def test_malformed_bodies_are_400_with_a_code(client_for, collector_key, body, code):
    response = post(client_for(collector_key), body)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert UsageEvent.objects.count() == 0


def test_batch_content_type_needs_an_array(client_for, collector_key):
    response = post(client_for(collector_key), make_event(id="e1"), BATCH)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_batch"


def test_other_content_types_are_415(client_for, collector_key):
    response = post(client_for(collector_key), "id=1", "text/plain")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_accepted_events_mark_their_hours_for_rollup(client_for, collector_key, now):
    batch = [
        make_event(id="a", time=now - timedelta(hours=2, minutes=-5)),
        make_event(id="b", time=now - timedelta(hours=2, minutes=-50)),
        make_event(id="c", time=now - timedelta(hours=30)),
    ]

    post(client_for(collector_key), batch)

    assert sorted(RollupMark.objects.values_list("hour", flat=True)) == [
        now - timedelta(hours=30),
        now - timedelta(hours=2),
    ]


def test_nul_characters_are_rejected_not_a_server_error(client_for, collector_key):
    event = make_event(id="a\x00b")
    nul_data = make_event(id="c", data={"gpu_seconds": 1, "gpu_model": "H\x00", "region": "x"})

    body = post(client_for(collector_key), [event, nul_data]).json()

    assert [(e["index"], e["id"], e["reasons"]) for e in body["errors"]] == [
        (0, "a\x00b", ["id must not contain NUL characters"]),
        (1, "c", ["data.gpu_model must not contain NUL characters"]),
    ]
    assert UsageEvent.objects.count() == 0


def test_an_org_with_events_cannot_be_deleted(client_for, collector_key, org):
    """The event table has no foreign key in the database (issue 18: its check locked the org's
    row for every event); the ORM's PROTECT still keeps an org's usage from losing its org."""
    from django.db.models import ProtectedError

    assert post(client_for(collector_key), [make_event(id="e1")]).status_code == 202
    with pytest.raises(ProtectedError):
        org.delete()
    assert UsageEvent.objects.filter(org=org).count() == 1


def test_an_event_and_the_hour_it_marks_are_stored_together(client_for, collector_key):
    """The hour marks are written by the insert statement itself, truncated in UTC."""
    moment = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=59, second=59)
    body = [make_event(id="late-minute", time=moment), make_event(id="dup", time=moment)]
    response = post(client_for(collector_key), body)

    assert response.json()["accepted"] == 2
    assert list(RollupMark.objects.values_list("event_type", "hour")) == [
        ("gpu.usage", moment.replace(minute=0, second=0, microsecond=0))
    ]
