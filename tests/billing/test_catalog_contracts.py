"""The rate_cards and contracts catalog sections (SPEC §5)."""

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml

from billing.catalog import CatalogError, load_catalog, load_catalog_file
from billing.models import Contract, CreditGrant, Price, RateCard, Reservation

from .conftest import CATALOG, contract

ROOT = Path(__file__).resolve().parents[2]
SPEC_CONTRACTS = """
issuers:
  - {key: tessera-fr, legal_name: Tessera Cloud SAS, country: FR, vat_id: FR40123456789,
     invoice_prefix: TFR, rounding: half_up}
meters:
  - {key: gpu_time, event_type: gpu.usage, value: $.gpu_seconds, aggregation: sum,
     group_by: {gpu_model: $.gpu_model, region: $.region}}
products:
  - {key: h100-eu-north, name: "NVIDIA H100 GPU-hour, eu-north", meter: gpu_time,
     filter: {gpu_model: H100, region: eu-north}, unit: GPU-hour, unit_size: 3600}
rate_cards:
  - key: list-usd-2026
    currency: USD
    effective_from: 2026-01-01
    prices:
      - {product: h100-eu-north, model: per_unit, unit_price: "2.50"}
orgs:
  - {slug: acme, name: Acme AI SAS, country: FR, vat_id: FR12345678901, currency: USD}
contracts:
  - key: acme-2026
    org: acme
    issuer: tessera-fr
    rate_card: list-usd-2026
    start: 2026-11-01
    end: 2027-11-01
    billing_day: 1
    payment_terms_days: 30
    discounts: [{product: h100-eu-north, percent: "10"}]   # no product: the whole contract
    reservations:
      - {product: h100-eu-north, quantity: 8, unit_price: "2.10", start: 2026-11-01,
         end: 2027-11-01, burst_unit_price: "2.40", ramp: [{from: 2027-02-01, quantity: 16}]}
    spend_commitments: [{amount: "20000.00", per: period}] # period | term
    credits: [{key: welcome, amount: "500.00", effective: 2026-11-01, expires: 2027-01-01,
               priority: 1}]
"""


def test_spec_example_loads_and_reloads_unchanged(db):
    document = yaml.safe_load(SPEC_CONTRACTS)
    load_catalog(document)
    report = load_catalog(document)
    assert report.created == {}
    assert report.updated == {}
    c = Contract.objects.get(key="acme-2026")
    assert (c.currency, c.start, c.end, c.billing_day) == (
        "USD",
        date(2026, 11, 1),
        date(2027, 11, 1),
        1,
    )
    r = Reservation.objects.get(contract=c)
    assert (r.quantity, r.unit_price, r.burst_unit_price) == (D(8), D("2.10"), D("2.40"))
    assert list(r.ramps.values_list("starts", "quantity")) == [(date(2027, 2, 1), D(16))]
    assert c.prices.get().discount_percent == D(10)
    assert c.commitments.get().amount == D("20000.00")
    assert CreditGrant.objects.get().balance == D("500.00")


def test_full_example_loads_twice_without_changes(db):
    load_catalog_file(ROOT / "examples" / "catalog-full.yaml")
    report = load_catalog_file(ROOT / "examples" / "catalog-full.yaml")
    assert report.created == {}
    assert report.updated == {}
    assert RateCard.objects.filter(key="list-usd-2026").count() == 2
    assert Price.objects.count() == 11


def _errors(document) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(document)
    return caught.value.errors


@pytest.mark.parametrize(
    ("contracts", "cards", "expected"),
    [
        (
            [contract(), contract(key="acme-2", start="2026-10-02", end="2026-12-01")],
            None,
            "contracts[1] (acme-2).start: overlaps contract 'acme-c' of org 'acme'",
        ),
        (
            [contract(reservations=[{"product": "h100", "quantity": 1, "unit_price": "1",
                                     "ramp": [{"from": "2026-10-05", "quantity": 2}]}])],
            None,
            "contracts[0] (acme-c).reservations[0].ramp[0].from: 2026-10-05 is outside the "
            "reservation's term [2026-10-01, 2026-10-03)",
        ),
        (
            [contract(reservations=[{"product": "h100", "quantity": -1, "unit_price": "1"}])],
            None,
            "contracts[0] (acme-c).reservations[0].quantity: must be greater than 0",
        ),
        (
            [contract(rate_card="list-eur", currency="USD")],
            None,
            "contracts[0] (acme-c).currency: USD differs from rate card 'list-eur' (EUR)",
        ),
        (
            [],
            [{"key": "bad", "currency": "USD", "effective_from": "2026-01-01", "prices": [
                {"product": "a100", "model": "graduated", "tiers": [
                    {"up_to": 100, "unit_price": "1"}, {"up_to": 50, "unit_price": "0.5"},
                    {"up_to": None, "unit_price": "0.1"}]}]}],
            "rate_cards[3] (bad).prices[0].tiers[1].up_to: 50 must be greater than the previous "
            "tier's 100",
        ),
    ],
)  # fmt: skip
def test_invalid_entries_are_named_and_nothing_is_written(db, contracts, cards, expected):
    document = {**CATALOG, "contracts": contracts}
    if cards:
        document["rate_cards"] = CATALOG["rate_cards"] + cards
    errors = _errors(document)
    assert expected in errors
    assert not Contract.objects.exists()
    assert not RateCard.objects.exists()


def test_overlap_with_a_contract_already_loaded(db):
    load_catalog({**CATALOG, "contracts": [contract()]})
    errors = _errors(
        {**CATALOG, "contracts": [contract(key="acme-2", start="2026-09-01", end=None)]}
    )
    assert "contracts[0] (acme-2).start: overlaps contract 'acme-c' of org 'acme'" in errors
    assert Contract.objects.count() == 1


@pytest.mark.parametrize(
    ("discounts", "prices", "expected"),
    [
        (
            [{"product": "h100", "percent": "10"}, {"product": "h100", "percent": "20",
                                                    "from": "2026-10-02"}],
            [],
            "contracts[0] (acme-c).discounts[1].from: h100 has another discount on 2026-10-02 "
            "(contracts[0] (acme-c).discounts[0])",
        ),
        (
            [{"percent": "5", "until": "2026-10-02"}, {"percent": "7"}],
            [],
            "contracts[0] (acme-c).discounts[1].from: the whole contract has another discount "
            "on 2026-10-01 (contracts[0] (acme-c).discounts[0])",
        ),
        (
            [],
            [{"product": "h100", "unit_price": "1", "from": "2026-10-02", "until": "2026-10-02"}],
            "contracts[0] (acme-c).prices[0].until: 2026-10-02 must be after from 2026-10-02",
        ),
        (
            [{"product": "h100", "percent": "10", "from": "2026-09-30"}],
            [],
            "contracts[0] (acme-c).discounts[0].from: 2026-09-30 is outside the contract's term",
        ),
        (
            [{"product": "h100", "percent": "10", "since": "2026-10-02"}],
            [],
            "contracts[0] (acme-c).discounts[0].since: is not a known field",
        ),
    ],
)  # fmt: skip
def test_dated_terms_that_clash_are_named(db, discounts, prices, expected):
    errors = _errors({**CATALOG, "contracts": [contract(discounts=discounts, prices=prices)]})
    assert expected in errors
    assert not Contract.objects.exists()


def test_dated_terms_and_stacked_reservations_load_and_reload_unchanged(db):
    # given a discount that changes on the 2nd, a custom price and a discount on the same
    # product, and two reservations of one product that overlap (they stack)
    entry = contract(
        discounts=[
            {"product": "h100", "percent": "10", "until": "2026-10-02"},
            {"product": "h100", "percent": "15", "from": "2026-10-02"},
        ],
        prices=[{"product": "h100", "unit_price": "1.90", "from": "2026-10-02"}],
        reservations=[
            {"product": "h100", "quantity": 4, "unit_price": "2.00"},
            {"product": "h100", "quantity": 2, "unit_price": "1.80", "start": "2026-10-02"},
        ],
    )
    document = {**CATALOG, "contracts": [entry]}
    load_catalog(document)
    report = load_catalog(document)

    assert report.updated == {}
    c = Contract.objects.get()
    assert sorted(
        c.prices.values_list("discount_percent", "unit_price", "valid_from", "valid_until")
    ) == [
        (D(0), D("1.90"), date(2026, 10, 2), None),
        (D(10), None, date(2026, 10, 1), date(2026, 10, 2)),
        (D(15), None, date(2026, 10, 2), None),
    ]
    assert list(c.reservations.values_list("quantity", "start")) == [
        (D(4), date(2026, 10, 1)),
        (D(2), date(2026, 10, 2)),
    ]


def test_two_reservations_of_a_product_from_the_same_day_are_refused(db):
    entry = contract(reservations=[{"product": "h100", "quantity": 4, "unit_price": "2.00"}] * 2)
    errors = _errors({**CATALOG, "contracts": [entry]})
    assert (
        "contracts[0] (acme-c).reservations[1].start: another reservation of 'h100' starts on "
        "2026-10-01"
    ) in errors


def test_the_admin_shows_a_contracts_dated_terms_and_amendments(db, admin_client):
    load_catalog({**CATALOG, "contracts": [contract(discounts=[{"percent": "5"}])]})
    c = Contract.objects.get()

    page = admin_client.get(f"/admin/billing/contract/{c.pk}/change/").content.decode()

    assert "Valid from" in page
    assert "Valid until" in page
    assert "Amendments" in page
