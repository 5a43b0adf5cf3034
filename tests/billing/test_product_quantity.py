"""SPEC §3 Product quantity: ``hourly`` (Σ U(h)) or ``period`` (the meter's aggregation over
the whole period), for max, latest and unique count meters; reads show what is billed."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from billing.catalog import CatalogError, load_catalog
from billing.invoicing.drafting import invoice_draft
from billing.models import BillingPeriod, Product
from billing.services import org_rate
from tenancy.models import Org
from tenancy.services import api_key_create

from ..conftest import make_event
from ..support.narrow import present
from .conftest import CATALOG, START, charges, contract, ingest

END = datetime(2026, 10, 3, tzinfo=UTC)

METERS: list[dict[str, Any]] = [
    {"key": "gpus_held", "event_type": "gpu.alloc", "value": "$.gpus", "aggregation": "max",
     "group_by": {"gpu_model": "$.gpu_model"}, "unit": "GPU"},
    {"key": "disk_gb", "event_type": "disk.size", "value": "$.gb", "aggregation": "latest",
     "group_by": {"volume": "$.volume"}, "unit": "GB"},
    {"key": "users", "event_type": "seat.use", "value": "$.user", "aggregation": "unique_count",
     "group_by": {"team": "$.team"}, "unit": "user"},
]  # fmt: skip
PRODUCTS: list[dict[str, Any]] = [
    {"key": "h100-peak", "name": "H100 GPUs, monthly peak", "meter": "gpus_held",
     "filter": {"gpu_model": "H100"}, "unit": "GPU", "unit_size": 1, "quantity": "period"},
    {"key": "h100-gpu-hours", "name": "H100 GPU-hours held", "meter": "gpus_held",
     "filter": {"gpu_model": "H100"}, "unit": "GPU-hour", "unit_size": 1},
    {"key": "disk-last", "name": "Disk, last size", "meter": "disk_gb", "unit": "GB",
     "quantity": "period"},
    {"key": "seats", "name": "Seats, distinct users", "meter": "users", "unit": "user",
     "quantity": "period"},
    {"key": "seat-hours", "name": "Seat-hours", "meter": "users", "unit": "user-hour",
     "quantity": "hourly"},
]  # fmt: skip
PRICES = [{"product": p["key"], "model": "per_unit", "unit_price": "10.00"} for p in PRODUCTS]


def load(**overrides: Any) -> None:
    card = {**CATALOG["rate_cards"][0], "prices": CATALOG["rate_cards"][0]["prices"] + PRICES}
    load_catalog(
        {
            **CATALOG,
            "meters": CATALOG["meters"] + METERS,
            "products": CATALOG["products"] + PRODUCTS,
            "rate_cards": [card, *CATALOG["rate_cards"][1:]],
            "contracts": [contract()],
            **overrides,
        }
    )


def event(type_: str, n: int, hour: int, minute: int, **data: Any) -> dict[str, Any]:
    return make_event(
        id=f"{type_}-{n}", type=type_, time=START + timedelta(hours=hour, minutes=minute), data=data
    )


def usage() -> None:
    ingest(
        [
            # GPUs held: peak 8 in hour 0, 3 in hour 1 → hourly Σ 11, period peak 8
            event("gpu.alloc", 1, 0, 5, gpus="5", gpu_model="H100"),
            event("gpu.alloc", 2, 0, 30, gpus="8", gpu_model="H100"),
            event("gpu.alloc", 3, 1, 10, gpus="3", gpu_model="H100"),
            event("gpu.alloc", 4, 1, 20, gpus="50", gpu_model="A100"),  # another product's
            # Disk: 100 GB in hour 0, then 40 GB in hour 5 (two volumes: the later wins)
            event("disk.size", 1, 0, 10, gb="100", volume="a"),
            event("disk.size", 2, 5, 0, gb="40", volume="b"),
            # Users: a, b in hour 0; b, c in hour 1 → hourly Σ 4, distinct over the period 3
            event("seat.use", 1, 0, 1, user="a", team="x"),
            event("seat.use", 2, 0, 2, user="b", team="x"),
            event("seat.use", 3, 1, 1, user="b", team="y"),
            event("seat.use", 4, 1, 2, user="c", team="y"),
        ]
    )


def rate() -> BillingPeriod:
    org_rate(org=Org.objects.get(slug="acme"), as_of=END)
    return BillingPeriod.objects.get(org__slug="acme", start=START)


def test_a_period_product_reads_and_bills_the_same_peak(db, client_for):
    # given a max meter with hourly peaks 8 and 3, billed as the period's peak and as GPU-hours
    load()
    usage()
    # when the period is rated, drafted, and read through the usage API
    period = rate()
    invoice, _ = invoice_draft(period_id=period.pk, as_of=END + timedelta(days=3))
    assert invoice is not None
    key = api_key_create(name="r", org=Org.objects.get(slug="acme"), scope="read").raw_key
    body = client_for(key).get("/api/v1/usage", {"period": "2026-10", "window": "month"}).json()
    # then the invoice bills peak 8 (not Σ of hourly peaks 11) for the period product
    lines = {
        (present(line.product).key, line.kind): (line.quantity, line.amount)
        for line in invoice.lines.all()
    }  # noqa: E501
    assert lines[("h100-peak", "on_demand")] == (D(8), D("80.00"))
    assert lines[("h100-gpu-hours", "on_demand")] == (D(11), D("110.00"))
    # and the read shows the same quantity and cost
    rows = {r["product"]: (r["quantity_kind"], r["quantity"], r["amount"]) for r in body["results"]}
    assert rows["h100-peak"] == ("period", "8.000000", "80.00")
    assert rows["h100-gpu-hours"] == ("hourly", "11.000000", "110.00")
    assert period.usage["h100-peak"] == "8.000000000000"


def test_latest_and_unique_count_over_the_period(db):
    load()
    usage()
    period = rate()
    billed = {c[0]: (c[3], c[5]) for c in charges(period)}
    assert billed["disk-last"] == (D(40), D("400.00"))  # the last value, not 100 + 40
    assert billed["seats"] == (D(3), D("30.00"))  # a, b, c: not 2 + 2
    assert billed["seat-hours"] == (D(4), D("40.00"))  # the hourly sum, as before


def test_daily_reads_of_a_period_product_take_each_days_aggregate(db, client_for):
    load()
    usage()
    rate()
    key = api_key_create(name="r", org=Org.objects.get(slug="acme"), scope="read").raw_key
    body = (
        client_for(key)
        .get("/api/v1/usage", {"period": "2026-10", "window": "hour", "product": "h100-peak"})
        .json()
    )
    assert [(r["start"], r["quantity"]) for r in body["results"]] == [
        ("2026-10-01T00:00:00Z", "8.000000"),
        ("2026-10-01T01:00:00Z", "3.000000"),
    ]
    # the cost of the peak is spread over the hours by their usage: 80 × 8/11, 80 × 3/11
    assert [r["amount"] for r in body["results"]] == ["58.18", "21.82"]


def test_quantity_defaults_to_hourly_and_is_validated(db):
    load()
    assert Product.objects.get(key="h100").quantity == "hourly"
    bad = [{**PRODUCTS[0], "quantity": "monthly"}]
    with pytest.raises(CatalogError) as error:
        load(products=CATALOG["products"] + bad)
    assert "products[3] (h100-peak).quantity: 'monthly' must be one of hourly, period" in str(
        error.value
    )


def test_a_reservation_of_a_period_product_is_refused(db):
    reserved = contract(
        reservations=[{"product": "h100-peak", "quantity": 4, "unit_price": "5.00"}]
    )
    with pytest.raises(CatalogError) as error:
        load(contracts=[reserved])
    assert "reservations[0].product: 'h100-peak' has quantity 'period'" in str(error.value)
    assert not Product.objects.filter(key="h100-peak").exists()  # nothing written
