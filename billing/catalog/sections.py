"""The catalog sections of the foundation: issuers, meters, products, orgs, capacity pools."""

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model

from metering.models import Meter
from metering.paths import PathError, parse_path
from tenancy.models import Org
from tenancy.vat_ids import VatIdError, vat_id_clean

from ..legal import legal_ids_clean, missing_details
from ..models import CapacityPool, Issuer, Product
from .base import Context, Section, upsert
from .entries import Entry

# Text lengths of an issuer's legal-detail keys (the model's columns).
_LEGAL_TEXT = {
    "legal_form": 64, "rcs_city": 100, "register_court": 100, "register_number": 32,
    "managing_directors": 300, "payment_terms_text": 300, "late_payment_rate": 200,
    "early_payment_discount": 200, "contact_name": 100, "contact_phone": 32,
}  # fmt: skip


def _issuer(entry: Entry, ctx: Context) -> dict[str, Any]:
    country = entry.country("country")
    values = {
        "key": entry.slug("key"),
        "legal_name": entry.text("legal_name"),
        "address": entry.text("address", "", max_length=1000),
        "country": country,
        "vat_id": entry.text("vat_id", "", max_length=32),
        "invoice_prefix": entry.text("invoice_prefix", max_length=16),
        "rounding": entry.choice("rounding", Issuer.Rounding.values, "half_up"),
        **{name: entry.text(name, "", max_length=size) for name, size in _LEGAL_TEXT.items()},
        "contact_email": _email(entry, "contact_email"),
        "share_capital": entry.decimal("share_capital", None, column=(20, 2)),
        "siren": entry.text("siren", "", max_length=20),
        "iban": entry.text("iban", "", max_length=50),
        "bic": entry.text("bic", "", max_length=20),
    }
    if isinstance(country, str) and country:
        ids = {name: values[name] or "" for name in ("vat_id", "siren", "iban", "bic")}
        clean, errors = legal_ids_clean(country=country, **ids)
        for name, message in errors.items():
            if name != "country":  # entry.country has said it
                entry.error(name, message)
        values.update(clean)
        for name in missing_details(country, values):
            ctx.warnings.append(
                f"{entry.label}.{name}: missing; {country} documents need it and will omit it"
            )
    return values


def _apply_issuer(v: dict[str, Any]) -> tuple[Model, str]:
    return upsert(Issuer, {"key": v["key"]}, {k: v[k] for k in v if k != "key"})


def _path(entry: Entry, field: str, raw: Any) -> None:
    try:
        parse_path(raw)
    except PathError as exc:
        entry.error(field, str(exc))


def _meter(entry: Entry, ctx: Context) -> dict[str, Any]:
    aggregation = entry.choice("aggregation", Meter.Aggregation.values)
    value = entry.text("value", "")
    if value:
        _path(entry, "value", value)
    elif aggregation and aggregation != Meter.Aggregation.COUNT:
        entry.error("value", f"is required for aggregation {aggregation!r}")
    group_by = entry.mapping("group_by", {}) or {}
    for name, path in group_by.items():
        _path(entry, f"group_by.{name}", path)
    return {
        "key": entry.slug("key"),
        "name": entry.text("name", ""),
        "event_type": entry.text("event_type", max_length=128),
        "value_path": value,
        "aggregation": aggregation,
        "group_by": group_by,
        "unit": entry.text("unit", "", max_length=50),
        "allow_negative": entry.boolean("allow_negative", False),
    }


def _apply_meter(v: dict[str, Any]) -> tuple[Model, str]:
    return upsert(Meter, {"key": v["key"]}, {k: v[k] for k in v if k != "key"})


def _product(entry: Entry, ctx: Context) -> dict[str, Any]:
    meter_key = entry.slug("meter")
    filters = entry.mapping("filter", {}) or {}
    meter = next((m for m in ctx.parsed.get("meters", []) if m["key"] == meter_key), None)
    if meter is None and meter_key:
        db_meter = Meter.objects.filter(key=meter_key).first()
        meter = {"group_by": db_meter.group_by} if db_meter else None
    if meter is None and meter_key:
        entry.error("meter", f"no meter {meter_key!r} in this file or the database")
    elif meter is not None:
        for name, value in filters.items():
            if name not in meter["group_by"]:
                entry.error(f"filter.{name}", f"meter {meter_key!r} has no dimension {name!r}")
            elif not isinstance(value, str | int):
                entry.error(f"filter.{name}", "must be a single value")
    return {
        "key": entry.slug("key"),
        "name": entry.text("name"),
        "meter": meter_key,
        "filter": {k: str(v) for k, v in filters.items()},
        "unit": entry.text("unit", max_length=50),
        "unit_size": entry.decimal("unit_size", 1, positive=True, column=(24, 6)),
        # hourly | period (SPEC §3): how a period's quantity of a max, latest or unique
        # count meter is taken; sum and count meters give the same either way.
        "quantity": entry.choice("quantity", Product.Quantity.values, Product.Quantity.HOURLY),
    }


def _apply_product(v: dict[str, Any]) -> tuple[Model, str]:
    values = {k: v[k] for k in v if k not in ("key", "meter")}
    values["meter"] = Meter.objects.get(key=v["meter"])
    return upsert(Product, {"key": v["key"]}, values)


def _org(entry: Entry, ctx: Context) -> dict[str, Any]:
    manager = entry.text("account_manager", "")
    if manager and not get_user_model().objects.filter(username=manager).exists():
        entry.error("account_manager", f"no user {manager!r}; create it with create_staff_user")
    return {
        "slug": entry.slug("slug"),
        "name": entry.text("name"),
        "billing_address": entry.text("billing_address", "", max_length=1000),
        "country": entry.country("country"),
        "vat_id": _vat_id(entry),
        "billing_email": _email(entry, "billing_email"),
        "currency": entry.currency("currency"),
        "account_manager": manager,
    }


def _email(entry: Entry, field: str) -> Any:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    value = entry.text(field, "", max_length=254)
    if value:
        try:
            validate_email(value)
        except ValidationError:
            entry.error(field, f"{value!r} is not an email address")
    return value


def _vat_id(entry: Entry) -> Any:
    """The entry's VAT id checked against its country and compacted (``tenancy.vat_ids``)."""
    raw = entry.text("vat_id", "", max_length=32)
    country = entry.raw.get("country")
    if not raw or not isinstance(country, str):
        return raw
    try:
        return vat_id_clean(country=country, vat_id=raw)
    except VatIdError as exc:
        entry.error("vat_id", exc.message)
        return raw


def _apply_org(v: dict[str, Any]) -> tuple[Model, str]:
    values = {k: v[k] for k in v if k not in ("slug", "account_manager")}
    if v["account_manager"]:
        values["account_manager"] = get_user_model().objects.get(username=v["account_manager"])
    return upsert(Org, {"slug": v["slug"]}, values)


def _pool(entry: Entry, ctx: Context) -> dict[str, Any]:
    return {
        "gpu_model": entry.text("gpu_model", max_length=32),
        "region": entry.text("region", max_length=64),
        "gpus": entry.integer("gpus"),
        "valid_from": entry.date("from"),
    }


def _apply_pool(v: dict[str, Any]) -> tuple[Model, str]:
    lookup = {k: v[k] for k in ("gpu_model", "region", "valid_from")}
    return upsert(CapacityPool, lookup, {"gpus": v["gpus"]})


ISSUERS = Section("issuers", _issuer, _apply_issuer)
METERS = Section("meters", _meter, _apply_meter)
PRODUCTS = Section("products", _product, _apply_product)
ORGS = Section("orgs", _org, _apply_org, natural_key=("slug",))
CAPACITY_POOLS = Section(
    "capacity_pools", _pool, _apply_pool, natural_key=("gpu_model", "region", "valid_from")
)
