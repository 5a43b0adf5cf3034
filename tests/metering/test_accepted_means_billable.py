"""SPEC §3 "Accepted means billable", as a law (hypothesis): whatever a batch holds (values
at and beyond the documented bounds, odd Unicode, lone surrogates, NUL, deep nesting,
missing or odd dimensions), the API answers 202, and every event it accepts rolls up, reads
back and rates without error, for its org and every other; the rolled-up sum is exact.

A period here holds at most four events at the bound, so its quantities stay below the
10^16 billing units that rating handles exactly (``metering.validation``)."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from billing.catalog import load_catalog
from billing.models import BillingPeriod
from billing.services import org_rate
from metering.models import HourlyRollup
from metering.rollups import rollup_pending
from tenancy.models import Org
from tenancy.services import api_key_create

URL = "/api/v1/events"
NOW = datetime.now(UTC)
WHEN = (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
TODAY = NOW.date()

CATALOG: dict[str, Any] = {
    "issuers": [{"key": "tessera-fr", "legal_name": "Tessera Cloud SAS", "country": "FR",
                 "invoice_prefix": "TFR"}],
    "meters": [
        {"key": "gpu_time", "event_type": "gpu.usage", "value": "$.gpu_seconds",
         "aggregation": "sum", "group_by": {"gpu_model": "$.gpu_model", "region": "$.region"}},
        {"key": "peak", "event_type": "job.metric", "value": "$.v", "aggregation": "max",
         "group_by": {"zone": "$.zone"}},
        {"key": "last", "event_type": "job.metric", "value": "$.v", "aggregation": "latest",
         "group_by": {"zone": "$.zone"}},
        {"key": "users", "event_type": "job.metric", "value": "$.user",
         "aggregation": "unique_count", "group_by": {"zone": "$.zone"}},
        {"key": "adjust", "event_type": "job.metric", "value": "$.delta", "aggregation": "sum",
         "group_by": {"zone": "$.zone"}, "allow_negative": True},
    ],
    "products": [
        {"key": "h100", "name": "H100 GPU-hour", "meter": "gpu_time",
         "filter": {"gpu_model": "H100"}, "unit": "GPU-hour", "unit_size": 3600},
        {"key": "a100-s", "name": "A100 GPU-second", "meter": "gpu_time",
         "filter": {"gpu_model": "A100"}, "unit": "GPU-second", "unit_size": 1},
        {"key": "peak", "name": "Peak", "meter": "peak", "unit": "u", "unit_size": 1},
        {"key": "last", "name": "Last", "meter": "last", "unit": "u", "unit_size": 1},
        {"key": "users", "name": "Users", "meter": "users", "unit": "u", "unit_size": 1},
        {"key": "adjust", "name": "Adjust", "meter": "adjust", "unit": "u", "unit_size": 1},
    ],
    "rate_cards": [{"key": "list", "currency": "USD", "effective_from": "2026-01-01", "prices": [
        {"product": "h100", "model": "per_unit", "unit_price": "2.50"},
        {"product": "a100-s", "model": "per_unit", "unit_price": "0.001"},
        {"product": "peak", "model": "per_unit", "unit_price": "0.10"},
        {"product": "last", "model": "per_unit", "unit_price": "0.10"},
        {"product": "users", "model": "per_unit", "unit_price": "1.00"},
        {"product": "adjust", "model": "per_unit", "unit_price": "0.50"},
    ]}],
    "orgs": [
        {"slug": "acme", "name": "Acme AI SAS", "country": "FR", "currency": "USD"},
        {"slug": "globex", "name": "Globex GmbH", "country": "DE", "currency": "USD"},
    ],
}  # fmt: skip


def mostly(good: Any, bad: Any) -> Any:
    """``good`` nine times in ten: most events stay valid, so the law is not vacuous."""
    return st.integers(0, 9).flatmap(lambda n: bad if n == 0 else good)


VALID_ODD = ["Ж", "🚀", "\u202e", "\ufeff", "１", "٣", "\n", '"', "\\", "\u00e9"]
valid_text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        st.sampled_from(VALID_ODD),
    ),
    max_size=12,
)
bad_text = st.tuples(valid_text, st.sampled_from(["\ud800", "\udfff", "\x00"])).map("".join)
long_text = st.builds(lambda c, n: c * n, st.sampled_from(["x", "Ж", "🚀"]), st.integers(250, 260))
bounded = st.decimals(min_value=0, max_value=Decimal("999999999999999.999999999999"), places=12)
signed = st.decimals(
    min_value=Decimal("-999999999999999.999999999999"),
    max_value=Decimal("999999999999999.999999999999"),
    places=12,
)
edges = ["999999999999999.999999999999", "0.000000000001", "1E14", "+.5", "5.", "-0", "0e5"]
good_quantity = st.one_of(
    bounded.map(str), bounded, st.integers(0, 10**15 - 1), st.sampled_from(edges)
)
bad_quantity = st.one_of(
    signed,
    st.decimals(min_value=-(10**16), max_value=10**16, places=13),
    st.integers(-(10**17), 10**17),
    st.sampled_from([
        "-999999999999999.999999999999", "1e15", "1000000000000000", "1_000", "１２", "NaN",
        "Infinity", "1e-13", "0e-99999", "1e999999", " 1", "٣", "0x10", "", "1e2147483648",
    ]),
    bad_text,
)  # fmt: skip
quantity = mostly(good_quantity, bad_quantity)
scalar = st.one_of(st.booleans(), st.integers(), signed, valid_text)
dimension = mostly(
    st.one_of(scalar, st.just("H100"), st.just("A100"), long_text.filter(lambda t: len(t) <= 256)),
    st.one_of(st.none(), long_text, bad_text, st.lists(scalar, max_size=2)),
)
json_value = st.recursive(
    st.one_of(st.none(), scalar, st.decimals(allow_nan=False, allow_infinity=False)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(mostly(valid_text, bad_text), children, max_size=3),
    ),
    max_leaves=8,
)


@st.composite
def nested(draw: Any) -> Any:
    node: Any = draw(scalar)
    for _ in range(draw(st.integers(20, 31))):  # the data's "extra" is level 3: 23 to 34
        node = {"n": node}
    return node


@st.composite
def event(draw: Any, index: int) -> dict[str, Any]:
    if draw(st.booleans()):
        data: dict[str, Any] = {
            "gpu_seconds": draw(quantity),
            "gpu_model": draw(dimension),
            "region": draw(dimension),
        }
        kind = "gpu.usage"
    else:
        data = {
            "v": draw(quantity),
            "user": draw(dimension),
            "delta": draw(mostly(signed, bad_quantity)),
            "zone": draw(dimension),
        }
        kind = "job.metric"
    for name in draw(mostly(st.just([]), st.lists(st.sampled_from(sorted(data)), max_size=1))):
        del data[name]
    data["extra"] = draw(st.one_of(json_value, nested()))
    return {
        "specversion": "1.0",
        "id": draw(mostly(st.just(f"e{index}"), bad_text.map(lambda t: f"e{index}{t}"))),
        "source": draw(mostly(st.sampled_from(["s", "Ж" * 255]), st.just("s" * 256))),
        "type": kind,
        "subject": draw(mostly(st.sampled_from(["acme", "globex"]), st.just("ac\x00me"))),
        "time": draw(
            mostly(st.sampled_from([WHEN, WHEN.lower()]), st.just("0001-01-01T00:30:00+01:00"))
        ),
        "data": data,
    }


batches = st.integers(1, 4).flatmap(lambda n: st.tuples(*(event(i) for i in range(n))))


def dumps(value: Any) -> str:
    """JSON with Decimals as JSON numbers (exactly as written) and surrogates escaped."""
    numbers: dict[str, str] = {}

    def swap(node: Any) -> Any:
        if isinstance(node, Decimal):
            token = f"@@number-{len(numbers)}@@"
            numbers[token] = str(node)
            return token
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [swap(v) for v in node]
        return node

    text = json.dumps(swap(value))
    for token, number in numbers.items():
        text = text.replace(f'"{token}"', number)
    return text


@pytest.fixture
def world(db: None, settings: Any) -> dict[str, Any]:
    settings.TESSERA_RATE_ON_ROLLUP = False
    load_catalog(
        {
            **CATALOG,
            "contracts": [
                {"key": f"{slug}-c", "org": slug, "issuer": "tessera-fr", "rate_card": "list",
                 "start": str(TODAY - timedelta(days=3)), "end": str(TODAY + timedelta(days=3))}
                for slug in ("acme", "globex")
            ],
        }
    )  # fmt: skip
    collector = APIClient()
    collector.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='c').raw_key}")
    readers = {}
    for org in Org.objects.all():
        reader = APIClient()
        key = api_key_create(name="r", org=org, scope="read").raw_key
        reader.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        readers[org.slug] = reader
    return {"collector": collector, "readers": readers}


def _exact(value: Any) -> Decimal:
    return Decimal(value) if not isinstance(value, float) else Decimal(repr(value))


# Exact beyond 15 significant digits: PostgreSQL's numeric; SQLite keeps 15 (README "Exact numbers")
@pytest.mark.postgres
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=batches)
def test_every_accepted_event_rolls_up_reads_and_rates(world, batch):
    with transaction.atomic():
        response = world["collector"].post(
            URL, data=dumps(list(batch)), content_type="application/cloudevents-batch+json"
        )

        assert response.status_code == 202, response.content
        body = response.json()
        refused = {e["index"] for e in body["errors"]}
        assert body["accepted"] + body["rejected"] == len(batch)
        for error in body["errors"]:
            assert error["problems"]
            assert all(p["field"] and p["code"] for p in error["problems"])
        rollup_pending()
        expected: dict[str, Decimal] = {}
        for index, sent in enumerate(batch):
            if index not in refused and sent["type"] == "gpu.usage":
                slug = sent["subject"]
                expected[slug] = expected.get(slug, Decimal(0)) + _exact(
                    sent["data"]["gpu_seconds"]
                )
        got: dict[str, Decimal] = {}
        for slug, value in HourlyRollup.objects.filter(meter__key="gpu_time").values_list(
            "org__slug", "value"
        ):
            got[slug] = got.get(slug, Decimal(0)) + value
        assert got == expected
        for org in Org.objects.all():
            org_rate(org=org, as_of=NOW)
            assert BillingPeriod.objects.filter(org=org).exists()
            for meter in ("gpu_time", "peak", "last", "users", "adjust"):
                read = world["readers"][org.slug].get(
                    "/api/v1/usage",
                    {"meter": meter, "start": str(TODAY - timedelta(days=2)),
                     "end": str(TODAY + timedelta(days=1)), "window": "hour"},
                )  # fmt: skip
                assert read.status_code == 200, read.content
        transaction.set_rollback(True)
