"""Issue 11 case 9, SPEC §5: the official CloudEvents SDK posts in its three modes (binary,
structured, batch) to the real ingestion API over HTTP, with the same validation and
identity rules in each."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from metering.models import HourlyRollup, UsageEvent
from metering.rollups import rollup_pending
from tenancy.services import api_key_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("gpu_meter")]
HOUR = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def usage(event_id: str, seconds: str = "60", **attributes: Any) -> CloudEvent:
    return CloudEvent(
        attributes={
            "id": event_id,
            "source": "sdk/test",
            "type": "gpu.usage",
            "subject": "acme",
            "time": HOUR,
            **attributes,
        },
        data={"gpu_seconds": seconds, "gpu_model": "Ж" * 90, "region": "eu-north"},
    )


def send(url: str, key: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/events",
        content=body,
        headers={**headers, "Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_the_sdk_posts_in_binary_structured_and_batch_modes(live_server, org):
    key = api_key_create(name="own", org=org, scope="ingest").raw_key
    binary = ce_http.to_binary_event(usage("binary", source="sdk/ünï cödé"))
    structured = ce_http.to_structured_event(usage("structured"))
    json_format = JSONFormat()
    batch_body = b"[" + b",".join(json_format.write(usage(f"b{i}")) for i in range(3)) + b"]"

    answers = [
        send(live_server.url, key, binary.headers, binary.body),
        send(live_server.url, key, structured.headers, structured.body),
        send(
            live_server.url,
            key,
            {"content-type": "application/cloudevents-batch+json"},
            batch_body,
        ),
        send(live_server.url, key, binary.headers, binary.body),
    ]

    assert [a.status_code for a in answers] == [202, 202, 202, 202]
    assert [a.json()["accepted"] for a in answers] == [1, 1, 3, 0]
    assert answers[3].json()["duplicates"] == 1
    assert dict(UsageEvent.objects.values_list("event_id", "source")) == {
        "binary": "sdk/ünï cödé",
        "structured": "sdk/test",
        "b0": "sdk/test",
        "b1": "sdk/test",
        "b2": "sdk/test",
    }
    assert set(UsageEvent.objects.values_list("time", flat=True)) == {HOUR}
    rollup_pending()
    assert HourlyRollup.objects.get().value == Decimal(300)


def test_binary_mode_has_the_same_rules(live_server, org):
    key = api_key_create(name="own", org=org, scope="ingest").raw_key
    negative = ce_http.to_binary_event(usage("negative", seconds="-3600"))
    other_org = ce_http.to_binary_event(usage("theirs", subject="globex"))
    bad_utf8 = ce_http.to_binary_event(usage("bad-utf8"))
    bad_utf8.headers["ce-source"] = "sdk%FF"
    lower_case = ce_http.to_binary_event(usage("lower"))
    lower_case.headers["ce-time"] = HOUR.strftime("%Y-%m-%dt%H:%M:%Sz")
    week_date = ce_http.to_binary_event(usage("week"))
    week_date.headers["ce-time"] = "2026-W48-7T05:10:00Z"

    answers = [
        send(live_server.url, key, m.headers, m.body)
        for m in (negative, other_org, bad_utf8, lower_case, week_date)
    ]

    codes = [
        [(p["field"], p["code"]) for e in a.json()["errors"] for p in e["problems"]]
        for a in answers
    ]
    assert codes == [
        [("data.gpu_seconds", "negative_not_allowed")],
        [("subject", "forbidden_subject")],
        [("source", "invalid_unicode")],
        [],
        [("time", "invalid_time")],
    ]
    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == ["lower"]


def test_binary_mode_with_another_content_type_is_415(live_server, org):
    key = api_key_create(name="own", org=org, scope="ingest").raw_key
    message = ce_http.to_binary_event(usage("xml"))

    answer = send(live_server.url, key, {**message.headers, "content-type": "text/xml"}, b"<a/>")

    assert answer.status_code == 415
    assert UsageEvent.objects.count() == 0
