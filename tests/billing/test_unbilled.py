"""Unbilled usage (SPEC §3, §5): accepted usage that no invoice line bills is listed with its
reason and quantity, and leaves the list once the missing contract, product or price is added
and ``rate`` runs (it is then on the period's charges)."""

import copy
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from billing.models import RatedCharge
from metering.models import HourlyRollup
from tenancy.models import Membership, Org, StaffRole
from tenancy.services import api_key_create

from ..conftest import make_event
from ..factories import UserFactory, staff_user
from .conftest import CATALOG, START, contract, gpu, ingest, the_period

AS_OF = "2026-10-05T00:00:00Z"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()  # the summary behind /metrics and the console is cached for a minute


def event(i: int, hour: int, seconds: str, **data: Any) -> dict[str, Any]:
    return make_event(
        id=f"odd-{i}",
        subject=data.pop("org", "acme"),
        time=START + timedelta(hours=hour, minutes=i),
        data={"gpu_seconds": seconds, "gpu_model": "H100", "region": "eu-north", **data},
    )


def unbilled(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    call_command("unbilled_usage", "--start", "2026-09-01", "--end", "2026-12-01", *args,
                 "--format", "json", stdout=out, stderr=io.StringIO())  # fmt: skip
    return json.loads(out.getvalue())


def row(org: str, reason: str, quantity: str, events: int, start: str, end: str,
        **dimensions: str) -> dict[str, Any]:  # fmt: skip
    return {
        "org": org, "meter": "gpu_time", "unit": "", "dimensions": dimensions, "reason": reason,
        "quantity": quantity, "events": events, "start": start, "end": end,
    }  # fmt: skip


def rate(as_of: str = AS_OF) -> None:
    call_command("rate", "--as-of", as_of, stdout=io.StringIO(), stderr=io.StringIO())


def with_product(key: str, filters: dict[str, str], price: str | None) -> dict[str, Any]:
    """Catalog sections with one more product, priced on list-usd when ``price`` is given."""
    products = [*CATALOG["products"], {"key": key, "name": key, "meter": "gpu_time",
                "filter": filters, "unit": "GPU-hour", "unit_size": 3600}]  # fmt: skip
    cards = copy.deepcopy(CATALOG["rate_cards"])
    if price is not None:
        cards[0]["prices"].append({"product": key, "model": "per_unit", "unit_price": price})
    return {"products": products, "rate_cards": cards}


def charge_of(product: str, slug: str = "acme") -> tuple[D, D]:
    c = RatedCharge.objects.get(org__slug=slug, product__key=product, kind="on_demand")
    return c.quantity, c.amount


def test_dimensions_that_match_no_product_are_listed_until_a_product_matches(catalog):
    catalog(contract())
    ingest([gpu(0, "3600"),  # billed: H100 in eu-north
            event(1, 2, "1800", region="default"),  # the GPU collector's old default region
            event(2, 3, "900", region="default"),
            event(3, 5, "60", gpu_model="h100")])  # lower case matches nothing  # fmt: skip
    rate()

    assert unbilled() == [
        row("acme", "no_matching_product", "2700.000000", 2, "2026-10-01T02:00:00Z",
            "2026-10-01T04:00:00Z", gpu_model="H100", region="default"),
        row("acme", "no_matching_product", "60.000000", 1, "2026-10-01T05:00:00Z",
            "2026-10-01T06:00:00Z", gpu_model="h100", region="eu-north"),
    ]  # fmt: skip
    assert charge_of("h100") == (D(1), D("2.50"))

    # finance adds the product for the default region, priced; the next rating bills it
    catalog(contract(), **with_product("h100-default", {"gpu_model": "H100", "region": "default"},
                                       "2.00"))  # fmt: skip
    rate()

    assert [r["dimensions"] for r in unbilled()] == [{"gpu_model": "h100", "region": "eu-north"}]
    assert charge_of("h100-default") == (D("0.75"), D("1.50"))


def test_usage_outside_every_contract_is_listed_until_a_contract_covers_it(catalog):
    catalog(contract())  # acme: 2026-10-01 to 2026-10-03; globex: no contract at all
    ingest([gpu(0, "3600"), gpu(50, "7200"), gpu(51, "3600"), gpu(1, "1800", org="globex")])
    rate()

    assert unbilled() == [
        row("acme", "no_contract", "10800.000000", 2, "2026-10-03T02:00:00Z",
            "2026-10-03T04:00:00Z", gpu_model="H100", region="eu-north"),
        row("globex", "no_contract", "1800.000000", 1, "2026-10-01T01:00:00Z",
            "2026-10-01T02:00:00Z", gpu_model="H100", region="eu-north"),
    ]  # fmt: skip

    # the renewal that should have been there, and globex's contract
    catalog(contract(), contract(key="acme-renewal", start="2026-10-03", end="2026-11-01"),
            contract(key="globex-c", org="globex"))  # fmt: skip
    rate("2026-11-03T00:00:00Z")

    assert unbilled() == []
    renewal = RatedCharge.objects.get(period__contract__key="acme-renewal", kind="on_demand")
    assert (renewal.quantity, renewal.amount) == (D(3), D("7.50"))
    assert charge_of("h100", "globex") == (D("0.5"), D("1.25"))


def test_a_product_without_a_price_is_listed_until_it_is_priced(catalog):
    catalog(contract(), **with_product("l40s", {"gpu_model": "L40S"}, None))
    ingest([gpu(0, "3600"), gpu(1, "5400", model="L40S")])
    rate()

    assert unbilled() == [
        row("acme", "no_price", "5400.000000", 1, "2026-10-01T01:00:00Z",
            "2026-10-01T02:00:00Z", gpu_model="L40S", region="eu-north"),
    ]  # fmt: skip
    assert not RatedCharge.objects.filter(product__key="l40s").exists()
    assert charge_of("h100") == (D(1), D("2.50"))  # the rest of the period is billed

    catalog(contract(), **with_product("l40s", {"gpu_model": "L40S"}, "1.20"))
    rate()

    assert unbilled() == []
    assert charge_of("l40s") == (D("1.5"), D("1.80"))


def test_on_demand_hours_of_a_reserved_product_without_a_price_are_no_price(catalog):
    """Before: the rating raised 'has usage but no price' and the org was not rated at all."""
    catalog(
        contract(reservations=[{"product": "l40s", "quantity": 1, "unit_price": "1.00",
                                "start": "2026-10-01", "end": "2026-10-02",
                                "burst_unit_price": "1.50"}]),
        **with_product("l40s", {"gpu_model": "L40S"}, None),
    )  # fmt: skip
    ingest([gpu(1, "3600", model="L40S"), gpu(30, "7200", model="L40S")])
    rate()

    assert [(r["reason"], r["quantity"], r["start"]) for r in unbilled()] == [
        ("no_price", "7200.000000", "2026-10-02T06:00:00Z"),
    ]
    reserved = RatedCharge.objects.get(product__key="l40s", kind="reservation")
    assert (reserved.quantity, reserved.amount) == (D(24), D("24.00"))


def test_the_window_and_org_filters(catalog):
    catalog(contract())
    ingest([event(1, 2, "1800", region="default"), event(2, 2, "60", org="globex")])

    assert [r["org"] for r in unbilled("--org", "globex")] == ["globex"]
    out = io.StringIO()
    call_command("unbilled_usage", "--start", "2026-10-01T03:00:00Z", "--end", "2026-10-02",
                 "--format", "csv", stdout=out, stderr=io.StringIO())  # fmt: skip
    assert out.getvalue().splitlines() == [
        "org,meter,unit,dimensions,reason,quantity,events,start,end"
    ]


# --- API, metric, console ------------------------------------------------------------------


@pytest.fixture
def one_unbilled(catalog: Any) -> None:
    catalog(contract())
    ingest([gpu(0, "3600"), event(1, 2, "1800", region="default")])


def api(user: Any = None, key: str | None = None, **params: str) -> Any:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    query = {"start": "2026-10-01", "end": "2026-10-03", **params}
    return client.get("/api/v1/unbilled-usage", query)


@pytest.mark.usefixtures("one_unbilled")
@pytest.mark.parametrize("role", [StaffRole.FINANCE, StaffRole.OPERATOR])
def test_finance_and_operators_read_unbilled_usage(role):
    response = api(staff_user("staff", role))

    assert response.status_code == 200
    assert response.json() == {
        "start": "2026-10-01T00:00:00Z",
        "end": "2026-10-03T00:00:00Z",
        "results": [
            {"org": "acme", "meter": "gpu_time", "unit": "",
             "dimensions": {"gpu_model": "H100", "region": "default"},
             "reason": "no_matching_product", "quantity": "1800.000000", "events": 1,
             "start": "2026-10-01T02:00:00Z", "end": "2026-10-01T03:00:00Z"}
        ],
        "next": None,  # one page: the list is cursor-paginated like every other
        "previous": None,
    }  # fmt: skip
    assert api(staff_user("staff", role), org="globex").json()["results"] == []


@pytest.mark.usefixtures("one_unbilled")
def test_everyone_else_is_refused_unbilled_usage():
    member = UserFactory.create()
    Membership.objects.create(org=Org.objects.get(slug="acme"), user=member, role="owner")
    read_key = api_key_create(name="r", org=Org.objects.get(slug="acme"), scope="read").raw_key

    assert api(member).status_code == 403
    assert api(staff_user("am", StaffRole.ACCOUNT_MANAGER)).status_code == 403
    assert api(key=read_key).status_code == 403
    assert api().status_code in (401, 403)


@pytest.mark.usefixtures("one_unbilled")
def test_unbilled_usage_api_names_the_bad_parameter():
    finance = staff_user("fin", StaffRole.FINANCE)

    assert api(finance, start="2026-10-01T00:30:00Z").json()["fields"] == {
        "start": ["Usage is kept per hour: give a whole UTC hour."]
    }
    assert api(finance, end="2026-09-01").json()["fields"] == {"end": ["end must be after start."]}
    assert api(finance, org="nope").json()["fields"] == {"org": ["No org 'nope'."]}


def test_metric_and_console_alert_follow_unbilled_usage(catalog, settings):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    catalog(contract(start=str((now - timedelta(days=3)).date()), end=None))
    key = api_key_create(name="c").api_key
    from metering.ingestion import Ingestor
    from metering.rollups import rollup_pending

    Ingestor(api_key=key).ingest(
        [make_event(id="d1", time=now - timedelta(hours=2),
                    data={"gpu_seconds": "600", "gpu_model": "H100", "region": "default"})]
    )  # fmt: skip
    rollup_pending()
    finance = staff_user("fin", StaffRole.FINANCE)
    client = Client()
    client.force_login(finance)

    text = client.get("/metrics").content.decode()
    assert 'tessera_unbilled_usage_events{reason="no_matching_product"} 1.0' in text
    assert 'tessera_unbilled_usage_rows{reason="no_contract"} 0.0' in text
    page = client.get("/finance/").content.decode()
    assert "1 unbilled usage row" in page
    listing = client.get("/finance/unbilled/").content.decode()
    assert "no_matching_product" in listing
    assert "<code>region=default</code>" in listing

    HourlyRollup.objects.all().delete()
    cache.clear()
    assert 'tessera_unbilled_usage_events{reason="no_matching_product"} 0.0' in (
        client.get("/metrics").content.decode()
    )
    assert "unbilled usage row" not in client.get("/finance/").content.decode()


def test_the_period_left_billed_is_not_touched_by_the_listing(catalog):
    """Listing reads only: no charge, rollup or period changes."""
    catalog(contract())
    ingest([gpu(0, "3600"), event(1, 2, "1800", region="default")])
    rate()
    before = list(RatedCharge.objects.values_list("pk", "amount"))

    unbilled()

    assert list(RatedCharge.objects.values_list("pk", "amount")) == before
    assert the_period().subtotal == D("2.50")
