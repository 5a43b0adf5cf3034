"""Issue 18: ingestion's fast path may only take a shortcut, never change an answer.

Two differential properties hold the fast path to the full validator (SPEC §3 "Accepted means
billable"):

- ``validation.plain_json`` (msgspec, in C) writes exactly the canonical JSON that the walk in
  Python writes, and returns text only for values the walk finds no problem in;
- ``Ingestor._plain`` accepts an event only if ``Ingestor._validate`` accepts it, and then
  builds the identical row (org, identity, time, canonical data, fingerprint).

Every refusal therefore still comes from the full validator, with its field and code.
"""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.ingestion import Ingestor
from metering.validation import (
    MAX_DEPTH,
    Problem,
    _quantity_checked,
    _walk,
    json_number,
    plain_json,
    quantity,
)
from tenancy.models import ApiKey
from tenancy.services import api_key_create

from ..conftest import make_event

# Numbers around every bound the walk checks: places, magnitude, exponent forms, long digits.
NUMBERS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.integers(),
    st.builds(
        lambda m, e: Decimal(f"{m}E{e}"), st.integers(-(10**30), 10**30), st.integers(-1100, 1100)
    ),
    st.builds(lambda n: Decimal("1." + "7" * n), st.integers(850, 1050)),
    st.builds(
        lambda n, e: Decimal("1." + "3" * n + f"E{e}"),
        st.integers(850, 1050),
        st.integers(-99, 99),
    ),
    st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-0"), 10**1001, 10**1000]),
    # What the parser makes of a number beyond Decimal's exponent range (found by review).
    st.sampled_from(["1e99999999999999999999", "-1E+9999999999999999999"]).map(json_number),
)
# Any character, lone surrogates and NUL included.
TEXT = st.text(st.characters(blacklist_categories=()), max_size=12)
SCALARS = st.one_of(st.none(), st.booleans(), TEXT, NUMBERS)
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=40,
)


def _nest(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"v": "1"}
    for _ in range(levels):
        node = {"n": node}
    return node


# Nesting near MAX_DEPTH, counted in containers.
DEEP = st.integers(28, 40).map(_nest)


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(node=st.one_of(st.dictionaries(TEXT, TREES, max_size=5), DEEP), depth=st.integers(1, 34))
def test_plain_json_is_the_walks_canonical_json_or_nothing(node: Any, depth: int) -> None:
    problems: list[Problem] = []
    walked = _walk(node, "data", problems, depth)
    fast = plain_json(node, depth)
    if fast is not None:
        assert fast == walked
        assert problems == []


def test_plain_json_takes_the_common_event_data() -> None:
    data = {"gpu_seconds": Decimal("60.5"), "gpu_model": "H100", "labels": {"team": "é"}}
    assert plain_json(data, 2) == '{"gpu_model":"H100","gpu_seconds":60.5,"labels":{"team":"é"}}'
    assert plain_json({"n": Decimal("1E+1001")}, 2) is None  # out of bounds: the walk says so
    assert plain_json(_nest(MAX_DEPTH), 2) is None  # too deep: the walk says so


@settings(max_examples=2000, deadline=None)
@given(
    value=st.one_of(
        st.from_regex(r"[+-]?[0-9]{0,17}(\.[0-9]{0,14})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
        TEXT,
    ),
    allow_negative=st.booleans(),
)
def test_the_usual_quantity_form_is_a_shortcut_not_another_rule(
    value: str, allow_negative: bool
) -> None:
    assert quantity(value, "data.v", allow_negative=allow_negative) == _quantity_checked(
        value, "data.v", allow_negative=allow_negative
    )


def _time(offset: timedelta) -> str:
    return (datetime.now(UTC) + offset).isoformat().replace("+00:00", "Z")


# Each attribute near what the validator refuses or handles specially.
VARIANTS: dict[str, Any] = {
    "specversion": st.sampled_from(["1.0", "1.1", Decimal("1.0"), None, ""]),
    "id": st.one_of(TEXT, st.sampled_from([" ", "x" * 255, "x" * 256, 7, None])),
    "source": st.one_of(TEXT, st.sampled_from(["\t", "s" * 255, "s" * 256, ["s"]])),
    "type": st.sampled_from(["gpu.usage", "cpu.usage", "", " ", "gpu.usage ", 1]),
    "subject": st.sampled_from(["acme", "globex", "nobody", "", "acme\x00", {"a": 1}, None]),
    "time": st.sampled_from(
        [
            _time(-timedelta(hours=1)),
            _time(-timedelta(days=400)),
            _time(timedelta(hours=1)),
            "2026-02-30T00:00:00Z",
            "2026-12-01T10:00:00",
            "2026-12-01t10:00:00z",
            "2026-12-01T10:00:60Z",
            1234,
        ]
    ),
    "datacontenttype": st.sampled_from(
        ["application/json", "Application/JSON", "application/json; charset=utf-8", "text/plain"]
    ),
    "data": st.one_of(
        st.fixed_dictionaries(
            {"gpu_seconds": st.one_of(NUMBERS, TEXT, st.sampled_from(["60", "1e3", "-5"]))},
            optional={
                "gpu_model": st.one_of(SCALARS, st.sampled_from(["H100", "x" * 257])),
                "region": st.sampled_from(["eu-north", None, {"a": 1}, "r" * 256]),
                "extra": TREES,
            },
        ),
        TREES,
    ),
    "comexampleext": TREES,
}


# One or two attributes changed, sometimes one dropped: most events stay near valid, so both
# paths are compared on many accepted events as well as refused ones.
CHANGE = st.sampled_from(sorted(VARIANTS)).flatmap(
    lambda name: VARIANTS[name].map(lambda value: {name: value})
)
REQUIRED = ["specversion", "id", "source", "type", "subject", "time", "data"]


@pytest.mark.django_db
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    changes=st.lists(CHANGE, max_size=2).map(
        lambda found: {k: v for c in found for k, v in c.items()}
    ),
    dropped=st.lists(st.sampled_from(REQUIRED), max_size=1),
)
def test_the_fast_path_accepts_only_what_the_validator_accepts_with_the_same_row(
    ingestors: list[Ingestor], changes: dict[str, Any], dropped: list[str]
) -> None:
    event = {**make_event(id="e-1"), **changes}
    for name in dropped:
        event.pop(name, None)
    for ingestor in ingestors:
        orgs = ingestor._orgs([event.get("subject")])
        fast = ingestor._plain(event, orgs, 3)
        row, problems = ingestor._validate(event, orgs, 3)
        hypothesis.event("fast path" if fast else "full validator")
        if fast is not None:
            assert problems == []
            assert fast == row


def test_the_fast_path_takes_the_usual_event(gpu_meter: Any, org: Any) -> None:
    """Not vacuous: a collector's usual event goes the fast way."""
    event = make_event(id="e-1", datacontenttype="application/json")
    ingestor = _ingestor("collector", org)
    fast = ingestor._plain(event, ingestor._orgs(["acme"]), 0)
    assert fast is not None
    assert fast == ingestor._validate(event, ingestor._orgs(["acme"]), 0)[0]


@pytest.fixture
def ingestors(gpu_meter: Any, org: Any, other_org: Any) -> list[Ingestor]:
    """One for a collector key, one for the org key of ``acme``."""
    return [_ingestor("collector", org), _ingestor("org", org)]


def _ingestor(kind: str, org: Any) -> Ingestor:
    if kind == "collector":
        key = api_key_create(name="collector").api_key
    else:
        key = api_key_create(name="ingest", org=org, scope=ApiKey.Scope.INGEST).api_key
    return Ingestor(api_key=key)


@pytest.mark.parametrize("text", ["1e99999999999999999999", "-1E+9999999999999999999"])
def test_a_number_beyond_decimal_is_never_vouched_for(text: str) -> None:
    """The parser reads it as ``BadNumber``: the C encoder must refuse it, not write it as an
    object, so the walk refuses the event with ``out_of_range`` (found by a differential review
    of the fast path against the code before it)."""
    node = {"extra": json_number(text), "ok": [json_number("1")]}
    assert plain_json(node, 2) is None
    problems: list[Problem] = []
    _walk(node, "data", problems, 2)
    assert [(p.field, p.code) for p in problems] == [("data.extra", "out_of_range")]


@pytest.mark.django_db
def test_an_event_with_such_a_number_anywhere_is_refused_through_the_api(
    gpu_meter: Any, org: Any, client_for: Any, collector_key: str
) -> None:
    event = make_event(id="huge")
    body = (
        json.dumps([event])[:-2] + ', "ext": 1e99999999999999999999}]'  # an extension attribute
    ).replace('"region": "eu-north"', '"region": "eu-north", "extra": -1E+9999999999999999999')
    response = client_for(collector_key).post(
        "/api/v1/events", data=body, content_type="application/cloudevents-batch+json"
    )

    assert response.status_code == 202
    assert response.json()["accepted"] == 0
    assert [(p["field"], p["code"]) for p in response.json()["errors"][0]["problems"]] == [
        ("ext", "out_of_range"),
        ("data.extra", "out_of_range"),
    ]
