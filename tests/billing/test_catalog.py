from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.catalog import CatalogError, load_catalog
from billing.models import CapacityPool, Issuer, Product
from metering.models import Meter
from tenancy.models import Org

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "catalog.yaml"


def document():
    return yaml.safe_load(EXAMPLE.read_text())


def counts():
    return tuple(m.objects.count() for m in (Issuer, Meter, Product, Org, CapacityPool))


def test_example_catalog_loads(db):
    report = load_catalog(document())

    assert report.created == {
        "issuers": 1,
        "meters": 5,
        "products": 3,
        "orgs": 1,
        "capacity_pools": 1,
    }
    product = Product.objects.get(key="h100-eu-north")
    assert product.meter.key == "gpu_time"
    assert product.filter == {"gpu_model": "H100", "region": "eu-north"}
    assert product.unit_size == Decimal(3600)
    assert Org.objects.get(slug="acme").vat_id == "FR12345678901"


def test_loading_twice_changes_nothing(db):
    load_catalog(document())
    before = list(Product.objects.values()) + list(Meter.objects.values("key", "updated_at"))

    report = load_catalog(document())

    assert report.created == {}
    assert report.updated == {}
    assert sum(report.unchanged.values()) == 11
    assert (
        list(Product.objects.values()) + list(Meter.objects.values("key", "updated_at")) == before
    )


def test_a_changed_entry_is_updated(db):
    load_catalog(document())
    doc = document()
    doc["products"][0]["name"] = "H100 hour"

    report = load_catalog(doc)

    assert report.updated == {"products": 1}
    assert Product.objects.get(key="h100-eu-north").name == "H100 hour"


def test_errors_name_entry_and_field_and_nothing_is_written(db):
    doc = document()
    doc["meters"][0]["aggregation"] = "avg"
    doc["products"][1]["filter"] = {"colour": "red"}
    doc["orgs"][0]["currency"] = "usd"
    doc["capacity_pools"][0]["gpus"] = -1
    doc["issuers"][0]["vat"] = "typo"

    with pytest.raises(CatalogError) as error:
        load_catalog(doc)

    assert error.value.errors == [
        "issuers[0] (tessera-fr).vat: is not a known field",
        "meters[0] (gpu_time).aggregation: "
        "'avg' must be one of sum, count, max, unique_count, latest",
        "products[1] (llama-70b-input).filter.colour: "
        "meter 'llm_uncached_input_tokens' has no dimension 'colour'",
        "orgs[0] (acme).currency: 'usd' must be an ISO 4217 code in capitals (e.g. USD)",
        "capacity_pools[0].gpus: must be at least 0",
    ]
    assert counts() == (0, 0, 0, 0, 0)


def test_a_reference_to_a_missing_meter_is_named(db):
    doc = {"products": [{"key": "p", "name": "P", "meter": "nope", "unit": "h"}]}

    with pytest.raises(CatalogError) as error:
        load_catalog(doc)

    assert error.value.errors == [
        "products[0] (p).meter: no meter 'nope' in this file or the database"
    ]


def test_bad_paths_and_unknown_sections_are_named(db):
    doc = {
        "meters": [{"key": "m", "event_type": "x", "value": "gpu_seconds", "aggregation": "sum"}],
        "pricing": [],
    }

    with pytest.raises(CatalogError) as error:
        load_catalog(doc)

    assert error.value.errors[0].startswith("pricing: unknown section")
    assert error.value.errors[1] == (
        "meters[0] (m).value: 'gpu_seconds' must start with '$.' (e.g. '$.gpu_seconds')"
    )


def test_duplicate_keys_in_a_file_are_named(db):
    doc = document()
    doc["orgs"].append(dict(doc["orgs"][0]))

    with pytest.raises(CatalogError) as error:
        load_catalog(doc)

    assert error.value.errors == ["orgs[1] (acme): duplicate entry for acme"]


def test_command_reports_invalid_yaml_and_writes_nothing(db, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("meters: [unclosed\n")

    with pytest.raises(CommandError, match="nothing was written"):
        call_command("load_catalog", str(bad))
    assert "not valid YAML" in capsys.readouterr().err
    assert counts() == (0, 0, 0, 0, 0)


def test_command_loads_json_too(db, tmp_path):
    import json

    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(document(), default=str))

    call_command("load_catalog", str(path))

    assert counts() == (1, 5, 3, 1, 1)


def test_demo_catalog_loads(db):
    from tenancy.services import staff_user_create

    staff_user_create(username="demo-am", role="account_manager")
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo-catalog.yaml"

    report = load_catalog(yaml.safe_load(demo.read_text()))

    assert report.created["orgs"] == 5
    assert report.created["contracts"] == 5
    assert Org.objects.get(slug="hooli").country == "DE"


def test_meters_refuse_negatives_unless_the_catalog_allows_them(db):
    doc = document()
    doc["meters"].append(
        {"key": "gpu_correction", "event_type": "gpu.correction", "value": "$.gpu_seconds",
         "aggregation": "sum", "allow_negative": True}
    )  # fmt: skip

    load_catalog(doc)

    allowed = dict(Meter.objects.values_list("key", "allow_negative"))
    assert allowed["gpu_correction"] is True
    assert set(allowed.values()) == {False, True}
    assert [key for key, allow in allowed.items() if allow] == ["gpu_correction"]


def test_allow_negative_must_be_a_boolean(db):
    doc = document()
    doc["meters"][0]["allow_negative"] = "yes"

    with pytest.raises(CatalogError) as error:
        load_catalog(doc)

    assert error.value.errors == ["meters[0] (gpu_time).allow_negative: must be true or false"]
    assert Meter.objects.count() == 0
