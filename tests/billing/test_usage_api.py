"""Usage reads with cost (SPEC §5): per product in billing units with the rated amounts,
per meter in meter units, windows, defaults, cursor pagination; rate cards and contracts."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from unittest import mock

import pytest
import yaml

from billing.catalog import load_catalog
from billing.invoicing.drafting import invoice_draft
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice
from billing.models import BillingPeriod
from billing.services import org_rate
from metering.ingestion import Ingestor
from metering.rollups import rollup_pending
from tenancy.models import Org
from tenancy.services import api_key_create, staff_user_create

from ..conftest import make_event
from ..support.fx import ecb_rates

CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog-full.yaml"
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
PRODUCT_KINDS = ("covered", "burst", "on_demand")  # the lines whose quantity is usage


@pytest.fixture
def november(db):
    """acme's November: 8 H100s reserved, 0-11 used by the hour (bursts), A100s, tokens;
    rated, drafted and finalized."""
    load_catalog(yaml.safe_load(CATALOG.read_text()))
    collector = api_key_create(name="c").api_key
    events = []
    for h in range(30 * 24):
        moment = NOV + timedelta(hours=h, minutes=7)
        events.append(
            make_event(
                id=f"h100-{h}",
                time=moment,
                data={
                    "gpu_seconds": str((h % 12) * 3600),
                    "gpu_model": "H100",
                    "region": "eu-north",
                },
            )
        )
        if h % 3 == 0:
            events.append(
                make_event(
                    id=f"a100-{h}",
                    time=moment,
                    data={"gpu_seconds": "5400.5", "gpu_model": "A100", "region": "eu-north"},
                )
            )
        events.append(
            make_event(
                id=f"tok-{h}",
                type="llm.tokens",
                source="gw",
                time=moment,
                data={
                    "model": "llama-3.1-70b",
                    "input_tokens": 1_700_000 + h,
                    "cached_tokens": 200_000,
                    "uncached_input_tokens": 1_500_000 + h,
                    "output_tokens": 310_000,
                },
            )
        )
    result = Ingestor(api_key=collector, now=DEC + timedelta(hours=1)).ingest(events)
    assert result.rejected == 0, result.errors
    rollup_pending()
    acme = Org.objects.get(slug="acme")
    org_rate(org=acme, as_of=DEC)
    period = BillingPeriod.objects.get(org=acme, start=NOV)
    invoice, reason = invoice_draft(period_id=period.pk, as_of=DEC + timedelta(days=3))
    assert invoice is not None, reason
    return finalized(invoice.pk, DEC + timedelta(days=3))


def reader(client_for, slug="acme"):
    org = Org.objects.get(slug=slug)
    return client_for(api_key_create(name="r", org=org, scope="read").raw_key)


def all_pages(client, params):
    body = client.get("/api/v1/usage", params).json()
    rows = list(body["results"])
    while body["next"]:
        body = client.get(body["next"]).json()
        rows += body["results"]
    return rows


def test_per_product_quantities_and_costs_equal_the_invoice_lines(november, client_for):
    # given the finalized November invoice, its product lines summed per product
    billed: dict[str, list[D]] = defaultdict(lambda: [D(0), D(0)])
    for line in november.lines.all():
        if line.product is None:
            continue  # the minimum spend true-up belongs to no product
        if line.kind in PRODUCT_KINDS:
            billed[line.product.key][0] += line.quantity
        billed[line.product.key][1] += line.amount
    client = reader(client_for)
    # when the month is read in one window, and day by day over every page
    month = client.get("/api/v1/usage", {"period": "2026-11", "window": "month"}).json()
    days = all_pages(client, {"period": "2026-11", "window": "day", "page_size": 7})
    # then each product's quantity (billing units) and cost equal the invoice's
    assert month["group_by"] == ["product"]
    assert month["currency"] == "USD"
    assert {r["product"]: [D(r["quantity"]), D(r["amount"])] for r in month["results"]} == billed
    by_day: dict[str, list[D]] = defaultdict(lambda: [D(0), D(0)])
    for row in days:
        by_day[row["product"]][0] += D(row["quantity"])
        by_day[row["product"]][1] += D(row["amount"])
    # costs are spread in cents by largest remainder: the days add up to the lines exactly;
    # quantities are shown to 12 places, so 30 days add up to within 30 × 1e-12
    assert {k: v[1] for k, v in by_day.items()} == {k: v[1] for k, v in billed.items()}
    assert all(abs(by_day[k][0] - billed[k][0]) < D("1e-10") for k in billed)
    assert len({(r["start"], r["product"]) for r in days}) == len(days) == 30 * 5
    assert billed["h100-eu-north"][1] > 0
    assert billed["llama-70b-output"][1] > 0


def test_hourly_rows_are_cursor_paginated_both_ways(november, client_for):
    client = reader(client_for)
    params = {"period": "2026-11", "window": "hour", "product": "h100-eu-north"}
    first = client.get("/api/v1/usage", params).json()
    second = client.get(first["next"]).json()
    back = client.get(second["previous"]).json()
    assert (len(first["results"]), first["previous"]) == (100, None)
    assert second["results"][0]["start"] > first["results"][-1]["start"]
    assert back["results"] == first["results"]
    rows = all_pages(client, params)
    assert len(rows) == 720  # every hour costs: the reservation is take-or-pay
    assert sum(D(r["quantity"]) for r in rows) == sum(D(h % 12) for h in range(720))
    idle = [r for r in rows if D(r["quantity"]) == 0]
    assert len(idle) == 60
    assert {r["amount"] for r in idle} == {"16.80"}  # 8 reserved × 2.10 per unit-hour


def test_meter_units_grouped_by_meter_or_by_dimension(november, client_for):
    client = reader(client_for)
    meters = client.get(
        "/api/v1/usage", {"period": "2026-11", "window": "month", "group_by": "meter"}
    ).json()
    rows = {r["meter"]: (r["unit"], D(r["value"])) for r in meters["results"]}
    assert rows["gpu_time"] == ("GPU-second", D(sum((h % 12) * 3600 for h in range(720)))
                                + D("5400.5") * 240)  # fmt: skip
    assert rows["llm_output_tokens"] == ("token", D(310_000 * 720))
    by_model = client.get(
        "/api/v1/usage",
        {"period": "2026-11", "window": "month", "meter": "gpu_time", "group_by": "gpu_model"},
    ).json()
    assert {r["dimensions"]["gpu_model"] for r in by_model["results"]} == {"H100", "A100"}


def test_filters_pick_products_by_their_dimensions(november, client_for):
    body = (
        reader(client_for)
        .get("/api/v1/usage", {"period": "2026-11", "window": "month", "filter.gpu_model": "A100"})
        .json()
    )
    assert [r["product"] for r in body["results"]] == ["a100-eu-north"]
    bad = reader(client_for).get("/api/v1/usage", {"filter.colour": "red"})
    assert bad.status_code == 400
    assert "filter.colour" in bad.json()["fields"]


def test_without_dates_the_current_period_is_read(november, client_for):
    with mock.patch("django.utils.timezone.now", return_value=NOV + timedelta(days=10)):
        body = reader(client_for).get("/api/v1/usage", {"window": "month"}).json()
    assert (body["start"], body["end"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    unknown = reader(client_for).get("/api/v1/usage", {"period": "2025-01"})
    assert unknown.status_code == 400
    assert "period" in unknown.json()["fields"]


def test_group_by_product_with_a_dimension_is_refused_with_the_field(november, client_for):
    response = reader(client_for).get("/api/v1/usage", {"group_by": "product,region"})
    assert response.status_code == 400
    assert "group_by" in response.json()["fields"]


def test_summary_honours_period_and_says_closed_periods_have_no_forecast(november, client_for):
    client = reader(client_for)
    body = client.get("/api/v1/orgs/acme/summary", {"period": "2026-11"}).json()
    assert body["period"]["status"] == "invoiced"
    assert body["forecast"] is None
    assert D(body["cost_so_far"]) == november.subtotal
    hours = client.get("/api/v1/orgs/acme/reservation-hours", {"period": "2026-11"}).json()
    assert len(hours["results"]) == 100
    assert hours["next"] is not None


def test_rate_cards_and_contracts_are_scoped(november, client_for):
    acme = reader(client_for)
    cards = acme.get("/api/v1/rate-cards").json()["results"]
    contracts = acme.get("/api/v1/contracts").json()["results"]
    assert {(c["key"], c["effective_from"]) for c in cards} == {
        ("list-usd-2026", "2026-01-01"),
        ("list-usd-2026", "2027-01-01"),
    }  # not sakura's JPY card
    [contract] = contracts
    assert (contract["key"], contract["org"], contract["rate_card"]) == (
        "acme-2026", "acme", "list-usd-2026",
    )  # fmt: skip
    assert acme.get("/api/v1/contracts").json()["next"] is None
    detail = acme.get(f"/api/v1/contracts/{contract['id']}").json()
    assert detail["reservations"][0]["ramp"] == [{"from": "2027-02-01", "quantity": "16"}]
    assert {p["product"] for p in detail["prices"]} == {"h100-eu-north", None, "llama-70b-output"}
    sakura_contract = reader(client_for, "sakura").get("/api/v1/contracts").json()["results"][0]
    assert acme.get(f"/api/v1/contracts/{sakura_contract['id']}").status_code == 404
    assert acme.get("/api/v1/contracts", {"org": "sakura"}).status_code == 403


def test_finance_reads_every_contract_and_card(november, client):
    client.force_login(staff_user_create(username="fin", role="finance"))
    assert len(client.get("/api/v1/contracts").json()["results"]) == 2
    assert len(client.get("/api/v1/rate-cards").json()["results"]) == 3
    assert len(client.get("/api/v1/contracts", {"org": "sakura"}).json()["results"]) == 1


def finalized(invoice_id, as_of):
    ecb_rates()  # the French issuer's USD invoice states its VAT in EUR
    invoices_finalize(invoice_ids=[invoice_id], as_of=as_of)
    return Invoice.objects.get(pk=invoice_id)
