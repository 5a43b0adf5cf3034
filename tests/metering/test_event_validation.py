"""Issue 11, ingestion side: each hostile or malformed event is refused alone, with its field
and a stable code, while the valid events of the same batch are stored, rolled up and read.
SPEC §3 "Accepted means billable", §5 POST /api/v1/events."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models.fields.json import KT

from metering.models import HourlyRollup, UsageEvent
from metering.rollups import rollup_pending
from tenancy.services import api_key_create

from ..conftest import make_event
from ..factories import MeterFactory

URL = "/api/v1/events"
BATCH = "application/cloudevents-batch+json"

pytestmark = pytest.mark.usefixtures("gpu_meter", "org", "other_org")


def post_raw(client: Any, body: str | bytes, content_type: str = BATCH) -> Any:
    return client.post(URL, data=body, content_type=content_type)


def post(client: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = post_raw(client, json.dumps(events))
    assert response.status_code == 202, response.content
    return response.json()


def gpu(id: str, seconds: Any = "60", subject: str = "acme", **data: Any) -> dict[str, Any]:
    return make_event(
        id=id,
        subject=subject,
        data={"gpu_seconds": seconds, "gpu_model": "H100", "region": "eu-north", **data},
    )


def problems(body: dict[str, Any]) -> dict[Any, list[tuple[str, str]]]:
    """{id or index: [(field, code), ...]} of the refused events."""
    return {
        e["id"] if e["id"] is not None else e["index"]: [
            (p["field"], p["code"]) for p in e["problems"]
        ]
        for e in body["errors"]
    }


def stored_ids() -> set[str]:
    return set(UsageEvent.objects.values_list("event_id", flat=True))


def rolled_up() -> dict[tuple[str, str], Decimal]:
    """Σ value per (org, gpu_model) over every rollup."""
    totals: dict[tuple[str, str], Decimal] = {}
    for slug, dims, value in HourlyRollup.objects.values_list("org__slug", "dimensions", "value"):
        key = (slug, dims["gpu_model"])
        totals[key] = totals.get(key, Decimal(0)) + value
    return totals


# Case 1: values PostgreSQL's numeric cast refuses once stopped the rollup of every org.
@pytest.mark.parametrize(
    "value", ["1_000", "１２", " 12", "12 ", "NaN", "Infinity", "-inf", "0x1F", "1,5", "", "١٢"]
)
def test_non_ascii_decimal_quantities_are_refused_and_the_rollup_goes_on(
    client_for, collector_key, value
):
    client = client_for(collector_key)
    body = post(client, [gpu("ok-acme"), gpu("bad", value), gpu("ok-globex", subject="globex")])

    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert problems(body) == {"bad": [("data.gpu_seconds", "invalid_decimal")]}
    assert "data.gpu_seconds" in body["errors"][0]["reasons"][0]
    assert stored_ids() == {"ok-acme", "ok-globex"}
    rollup_pending()
    assert rolled_up() == {("acme", "H100"): Decimal(60), ("globex", "H100"): Decimal(60)}


@pytest.mark.parametrize("value", ["+5", "5.", ".5", "1e3", "1.5E-3", "-0", "007"])
def test_every_form_of_the_decimal_grammar_rolls_up_exactly(client_for, collector_key, value):
    body = post(client_for(collector_key), [gpu("e", value)])

    assert body["accepted"] == 1
    rollup_pending()
    assert HourlyRollup.objects.get().value == Decimal(value)


def test_a_long_non_ascii_dimension_value_rolls_up(client_for, collector_key):
    """90 Cyrillic characters once overflowed the rollup key (JSON-escaped to 540 bytes)."""
    model = "Ж" * 90
    event = make_event(id="cyr", data={"gpu_seconds": "60", "gpu_model": model, "region": "r"})
    rockets = "🚀" * 256
    astral = make_event(id="emoji", data={"gpu_seconds": "1", "gpu_model": rockets, "region": "r"})

    body = post(client_for(collector_key), [event, astral, gpu("other", subject="globex")])

    assert body["accepted"] == 3
    rollup_pending()
    assert rolled_up() == {
        ("acme", model): Decimal(60),
        ("acme", rockets): Decimal(1),
        ("globex", "H100"): Decimal(60),
    }


def test_dimension_values_are_bounded_as_the_rollup_reads_them(client_for, collector_key):
    batch = [
        gpu("257-chars", gpu_model="x" * 257),
        gpu("256-chars", gpu_model="é" * 256),
        gpu("object", gpu_model={"name": "H100"}),
        gpu("list", gpu_model=["H100"]),
        gpu("number", gpu_model=100),
        gpu("long-number", gpu_model=Decimal("1e300")),
    ]
    text = json.dumps(batch, default=str).replace('"1E+300"', "1e300")

    body = post_raw(client_for(collector_key), text).json()

    assert problems(body) == {
        "257-chars": [("data.gpu_model", "too_long")],
        "object": [("data.gpu_model", "invalid_dimension")],
        "list": [("data.gpu_model", "invalid_dimension")],
        "long-number": [("data.gpu_model", "too_long")],
    }
    assert stored_ids() == {"256-chars", "number"}


def test_attribute_lengths_are_bounded_in_characters(client_for, collector_key):
    batch = [
        gpu("i" * 256),
        gpu("ж" * 255),
        {**gpu("long-source"), "source": "s" * 256},
        {**gpu("long-subject"), "subject": "a" * 256},
    ]

    body = post(client_for(collector_key), batch)

    assert [(e["index"], [p["code"] for p in e["problems"]]) for e in body["errors"]] == [
        (0, ["too_long"]),
        (2, ["too_long"]),
        (3, ["too_long"]),
    ]
    fields = [p["field"] for e in body["errors"] for p in e["problems"]]
    assert fields == ["id", "source", "subject"]
    assert stored_ids() == {"ж" * 255}


# Case 2: a value rating cannot handle.
# Exact beyond 15 significant digits: PostgreSQL's numeric; SQLite keeps 15 (README "Exact numbers")
@pytest.mark.postgres
def test_quantities_beyond_the_documented_bounds_are_refused(client_for, collector_key):
    batch = [
        gpu("1e16", "10000000000000000"),
        gpu("1e15", "1000000000000000"),
        gpu("json-1e15", Decimal("1e15")),
        gpu("13-places", "0.0000000000001"),
        gpu("huge-exponent", "1e999999999999999999999"),
        # Past decimal's Emax, where abs() raises Overflow (found by hypothesis in CI).
        gpu("past-emax", "1e2147483648"),
        gpu("json-past-emax", Decimal("-1e2147483648")),
        gpu("zero-tiny-exponent", "0e-99999"),
        gpu("max", "999999999999999.999999999999"),
        gpu("12-places", "0.000000000001"),
        gpu("zeros-as-written", "1.000000000000"),
    ]
    text = json.dumps(batch, default=str).replace('"1E+15"', "1e15")
    text = text.replace('"-1E+2147483648"', "-1e2147483648")

    body = post_raw(client_for(collector_key), text).json()

    assert problems(body) == {
        "1e16": [("data.gpu_seconds", "out_of_range")],
        "1e15": [("data.gpu_seconds", "out_of_range")],
        "json-1e15": [("data.gpu_seconds", "out_of_range")],
        "13-places": [("data.gpu_seconds", "too_precise")],
        "huge-exponent": [("data.gpu_seconds", "out_of_range")],
        "past-emax": [("data.gpu_seconds", "out_of_range")],
        "json-past-emax": [("data.gpu_seconds", "out_of_range")],
        "zero-tiny-exponent": [("data.gpu_seconds", "too_precise")],
    }
    assert stored_ids() == {"max", "12-places", "zeros-as-written"}
    rollup_pending()
    # 999999999999999.999999999999 + 0.000000000001 + 1, exactly
    assert rolled_up() == {("acme", "H100"): Decimal("1000000000000001")}


# Exact beyond 15 significant digits: PostgreSQL's numeric; SQLite keeps 15 (README "Exact numbers")
@pytest.mark.postgres
def test_usage_at_the_bound_reads_back_exactly(client_for, collector_key, org):
    """The usage read once answered 500 above 10^16 (28-digit quantize)."""
    events = [gpu(f"max-{i}", "999999999999999.999999999999") for i in range(20)]
    post(client_for(collector_key), events)
    rollup_pending()
    reader = api_key_create(name="r", org=org, scope="read").raw_key
    start = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    end = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()

    response = client_for(reader).get(
        "/api/v1/usage", {"meter": "gpu_time", "start": start, "end": end, "window": "month"}
    )

    assert response.status_code == 200
    total = sum(Decimal(r["value"]) for r in response.json()["results"])
    assert total == Decimal("19999999999999999.99999999998")


# Case 3: a JSON number is read as a decimal, never through a binary float.
# Exact beyond 15 significant digits: PostgreSQL's numeric; SQLite keeps 15 (README "Exact numbers")
@pytest.mark.postgres
def test_json_numbers_are_exact_decimals(client_for, collector_key):
    text = json.dumps([gpu("n", "PLACEHOLDER")]).replace('"PLACEHOLDER"', "123456789012.123456")

    body = post_raw(client_for(collector_key), text).json()

    assert body["accepted"] == 1
    rollup_pending()
    assert HourlyRollup.objects.get().value == Decimal("123456789012.123456")
    stored = UsageEvent.objects.annotate(v=KT("data__gpu_seconds")).values_list("v", flat=True)
    assert list(stored) == ["123456789012.123456"]


# Case 4: one bad event once failed the whole batch with 500.
def test_each_unstorable_event_is_refused_alone(client_for, collector_key):
    batch = [
        gpu("surrogate", note="PLACEHOLDER"),
        {**gpu("nul-subject"), "subject": "ac\x00me"},
        gpu("deep", extra="DEEP"),
        {**gpu("year-0"), "time": "0001-01-01T00:30:00+01:00"},
        gpu("good"),
        {**gpu("surrogate-extension"), "traceparent": "PLACEHOLDER"},
        {**gpu("surrogate-key"), "data": {"gpu_seconds": "1", "gpu_model": "H100",
                                          "region": "r", "PLACEHOLDER": 1}},
        gpu("deep-but-allowed", extra=_nested(29)),
        gpu("one-too-deep", extra=_nested(30)),
    ]  # fmt: skip
    deep = '{"a":' * 1000 + "null" + "}" * 1000
    text = json.dumps(batch).replace("PLACEHOLDER", "\\ud800").replace('"DEEP"', deep)

    response = post_raw(client_for(collector_key), text)

    assert response.status_code == 202
    body = response.json()
    assert problems(body) == {
        "surrogate": [("data.note", "invalid_unicode")],
        "nul-subject": [("subject", "nul_character")],
        2: [("event", "too_deep")],
        "year-0": [("time", "invalid_time")],
        "surrogate-extension": [("traceparent", "invalid_unicode")],
        "surrogate-key": [("data key '\\ud800'", "invalid_unicode")],
        "one-too-deep": [("data.extra" + ".a" * 30, "too_deep")],  # level 33
    }
    assert stored_ids() == {"good", "deep-but-allowed"}
    assert body["accepted"] == 2


def _nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(levels):
        node = {"a": node}
    return node


def test_a_single_event_too_deep_is_refused_not_a_server_error(client_for, collector_key):
    text = '{"specversion": "1.0", "data": ' + "[" * 5000 + "]" * 5000 + "}"

    response = post_raw(client_for(collector_key), text, "application/cloudevents+json")

    assert response.status_code == 202
    assert problems(response.json()) == {0: [("event", "too_deep")]}
    assert UsageEvent.objects.count() == 0


def test_the_usage_api_refuses_a_start_before_year_one_in_utc(client_for, org):
    reader = api_key_create(name="r", org=org, scope="read").raw_key

    response = client_for(reader).get(
        "/api/v1/usage",
        {"meter": "gpu_time", "start": "0001-01-01T00:00:00+01:00", "end": "2026-11-01"},
    )

    assert response.status_code == 400
    assert "start" in response.json()["fields"]


# Every group-by dimension of the meter must be present (SPEC §3).
@pytest.mark.parametrize("region", ["missing", None])
def test_a_missing_or_null_dimension_is_refused(client_for, collector_key, region):
    data: dict[str, Any] = {"gpu_seconds": "60", "gpu_model": "H100"}
    if region is None:
        data["region"] = None
    body = post(client_for(collector_key), [make_event(id="no-region", data=data), gpu("ok")])

    assert problems(body) == {"no-region": [("data.region", "missing_dimension")]}
    assert "dimension 'region' of meter 'gpu_time'" in body["errors"][0]["reasons"][0]
    assert stored_ids() == {"ok"}


# Case 5: negative usage, even from the customer's own key.
def test_negative_quantities_are_refused_unless_the_meter_allows_them(client_for, org):
    MeterFactory.create(
        key="gpu_credit",
        event_type="gpu.correction",
        value_path="$.gpu_seconds",
        aggregation="sum",
        group_by={"gpu_model": "$.gpu_model"},
        allow_negative=True,
    )
    own_key = api_key_create(name="k", org=org, scope="ingest").raw_key
    correction = make_event(
        id="correction",
        type="gpu.correction",
        data={"gpu_seconds": "-3600", "gpu_model": "H100"},
    )
    batch = [gpu("negative", "-3600000"), gpu("json-negative", -1), correction, gpu("ok")]

    body = post(client_for(own_key), batch)

    assert problems(body) == {
        "negative": [("data.gpu_seconds", "negative_not_allowed")],
        "json-negative": [("data.gpu_seconds", "negative_not_allowed")],
    }
    assert stored_ids() == {"correction", "ok"}


# Case 8: RFC 3339 only.
@pytest.mark.parametrize(
    "time",
    [
        "20261129T051000Z",
        "2026-W48-7T05:10:00Z",
        "2026-333T05:10:00Z",
        "2026-11-29T05:10Z",
        "2026-11-29 05:10:00Z",
        "2026-11-29T05:10:00+0100",
        "2026-11-29T05:10:00",
        "2026-11-29T05:10:60Z",
        "2026-11-29T24:00:00Z",
        "２０２６-11-29T05:10:00Z",
        "2026-11-29T05:10:00.Z",
    ],
)
def test_times_that_are_not_rfc_3339_are_refused(client_for, collector_key, time):
    body = post(client_for(collector_key), [{**gpu("t"), "time": time}])

    assert problems(body) == {"t": [("time", "invalid_time")]}
    assert UsageEvent.objects.count() == 0


def test_lower_case_t_and_z_and_offsets_are_rfc_3339(client_for, collector_key):
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    lower = hour.strftime("%Y-%m-%dt%H:%M:%S.123456789z")
    offset = (hour + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S+05:30")

    body = post(client_for(collector_key), [{**gpu("lower"), "time": lower},
                                            {**gpu("offset"), "time": offset}])  # fmt: skip

    assert body["accepted"] == 2
    assert dict(UsageEvent.objects.values_list("event_id", "time")) == {
        "lower": hour + timedelta(microseconds=123456),
        "offset": hour,
    }


def test_problem_codes_are_documented_in_the_openapi_schema(client):
    from metering.validation import CODES

    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    text = schema.content.decode()

    for code in CODES:
        assert f"`{code}`" in text
