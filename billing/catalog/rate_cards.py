"""Catalog section ``rate_cards`` (SPEC §5 "Pricing as code"): list prices per product, versioned
by ``effective_from``; each price per unit, graduated, volume or package."""

from decimal import Decimal
from typing import Any

from django.db.models import Model

from ..models import Price, Product, RateCard
from .base import Context, Section, product_known, upsert
from .entries import Entry


def _tiers(entry: Entry, model: str) -> list[dict[str, str | None]]:
    raw = entry.listing("tiers", None)
    if model not in (Price.Model.GRADUATED, Price.Model.VOLUME):
        if raw is not None:
            entry.error("tiers", f"only graduated and volume prices have tiers, not {model!r}")
        return []
    if not raw:
        entry.error("tiers", f"a {model} price needs at least one tier")
        return []
    tiers: list[dict[str, str | None]] = []
    previous = Decimal(0)
    for index, item in enumerate(raw):
        tier = Entry(f"{entry.label}.tiers", index, item, entry.errors)
        up_to = tier.decimal("up_to", None, positive=True)
        price = tier.decimal("unit_price")
        tier.finish()
        last = index == len(raw) - 1
        if up_to is None and not last:
            tier.error("up_to", "only the last tier may be open (up_to: null)")
        if up_to is not None and last:
            tier.error("up_to", "the last tier must be open (up_to: null)")
        if up_to is not None:
            if up_to <= previous:
                tier.error("up_to", f"{up_to} must be greater than the previous tier's {previous}")
            previous = up_to
        tiers.append(
            {
                "up_to": None if up_to is None else str(up_to),
                "unit_price": None if price is None else str(price),
            }
        )
    return tiers


def _rate_card(entry: Entry, ctx: Context) -> dict[str, Any]:
    key = entry.slug("key")
    currency = entry.currency("currency")
    versions = ctx.parsed.setdefault("rate_cards (so far)", [])
    versions.append({"key": key, "currency": currency})
    others = {p["currency"] for p in versions if p["key"] == key} | set(
        RateCard.objects.filter(key=key).values_list("currency", flat=True)
    )
    if currency and others - {currency}:
        entry.error("currency", f"{currency} differs from other versions of {key!r}: {others}")
    prices = []
    seen: set[str] = set()
    for price in entry.children("prices"):
        product = price.slug("product")
        product_known(price, ctx, "product", product)
        if product in seen:
            price.error("product", f"{product!r} is priced twice on this rate card")
        seen.add(product)
        model = price.choice("model", Price.Model.values, Price.Model.PER_UNIT)
        tiers = _tiers(price, model) if model else []
        unit_price = None
        package_size = None
        if model in (Price.Model.PER_UNIT, Price.Model.PACKAGE):
            unit_price = price.decimal("unit_price")
        elif price.raw.get("unit_price") is not None:
            price.get("unit_price")
            price.error("unit_price", f"a {model} price is set by its tiers")
        if model == Price.Model.PACKAGE:
            package_size = price.decimal("package_size", positive=True)
        price.finish()
        prices.append(
            {
                "product": product,
                "model": model,
                "unit_price": unit_price,
                "package_size": package_size,
                "tiers": tiers,
            }
        )
    return {
        "key": key,
        "name": entry.text("name", ""),
        "currency": currency,
        "effective_from": entry.date("effective_from"),
        "prices": prices,
    }


def _apply_rate_card(v: dict[str, Any]) -> tuple[Model, str]:
    card, outcome = upsert(
        RateCard,
        {"key": v["key"], "effective_from": v["effective_from"]},
        {"name": v["name"], "currency": v["currency"]},
    )
    products = {
        p.key: p for p in Product.objects.filter(key__in=[p["product"] for p in v["prices"]])
    }
    changed = card.prices.exclude(product__key__in=list(products)).delete()[0] > 0
    for price in v["prices"]:
        values = {k: price[k] for k in ("model", "unit_price", "package_size", "tiers")}
        _, result = upsert(
            Price, {"rate_card": card, "product": products[price["product"]]}, values
        )
        changed = changed or result != "unchanged"
    return card, "updated" if outcome == "unchanged" and changed else outcome


RATE_CARDS = Section(
    "rate_cards", _rate_card, _apply_rate_card, natural_key=("key", "effective_from")
)
