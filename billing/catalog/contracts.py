"""Catalog section ``contracts`` (SPEC §5 "Pricing as code").

A contract entry carries its discounts, custom prices, reservations (with ramps), spend
commitments and credits; they are synced with the file: the children a file no longer names
are removed, except credit grants, which are a ledger's accounts and are never deleted.
"""

from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import F, Model

from tenancy.models import Org

from ..lock_objects import lock_credit_grant
from ..models import (
    Contract,
    ContractPrice,
    CreditGrant,
    Issuer,
    Product,
    RateCard,
    Reservation,
    ReservationRamp,
    SpendCommitment,
)
from .base import Context, Section, product_known, upsert
from .entries import Entry

FAR_FUTURE = date.max


def _hourly_product(entry: Entry, ctx: Context, key: Any) -> None:
    """Reservations net per hour (SPEC §6 step 2): their product's quantity must be hourly."""
    parsed = next((p for p in ctx.parsed.get("products", []) if p.get("key") == key), None)
    quantity = parsed["quantity"] if parsed else None
    if parsed is None and key:
        quantity = Product.objects.filter(key=key).values_list("quantity", flat=True).first()
    if quantity == Product.Quantity.PERIOD:
        entry.error("product", f"{key!r} has quantity 'period'; a reservation nets per hour")


def _overlaps(a: tuple[date, date | None], b: tuple[date, date | None]) -> bool:
    return a[0] < (b[1] or FAR_FUTURE) and b[0] < (a[1] or FAR_FUTURE)


def _ramps(entry: Entry, start: Any, end: Any) -> list[dict[str, Any]]:
    ramps = []
    previous = start
    for ramp in entry.children("ramp"):
        starts = ramp.date("from")
        quantity = ramp.decimal("quantity")
        ramp.finish()
        if isinstance(starts, date) and isinstance(start, date) and isinstance(end, date):
            if not start < starts < end:
                ramp.error("from", f"{starts} is outside the reservation's term [{start}, {end})")
            elif previous and starts <= previous:
                ramp.error("from", f"{starts} must come after the previous step ({previous})")
            previous = starts
        ramps.append({"starts": starts, "quantity": quantity})
    return ramps


def _reservations(entry: Entry, ctx: Context, term: tuple[Any, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for item in entry.children("reservations"):
        product = item.slug("product")
        product_known(item, ctx, "product", product)
        _hourly_product(item, ctx, product)
        start = item.date("start", term[0])
        end = item.date("end", term[1])
        if end is None and term[1] is None:
            item.error("end", "is required when the contract is open-ended")
        values = {
            "product": product,
            "quantity": item.decimal("quantity", positive=True),
            "unit_price": item.decimal("unit_price"),
            "burst_unit_price": item.decimal("burst_unit_price", None),
            "start": start,
            "end": end,
            "ramps": _ramps(item, start, end),
        }
        item.finish()
        if isinstance(start, date) and isinstance(end, date) and isinstance(term[0], date):
            if end <= start:
                item.error("end", f"{end} must be after start {start}")
            elif start < term[0] or end > (term[1] or FAR_FUTURE):
                item.error("start", f"[{start}, {end}) is outside the contract's term")
            # Reservations of one product may overlap: they stack (SPEC §3). Two starting on
            # the same day are one reservation written twice.
            if any(o["product"] == product and o["start"] == start for o in result):
                item.error("start", f"another reservation of {product!r} starts on {start}")
        result.append(values)
    return result


def _dated(item: Entry, term: tuple[Any, Any]) -> tuple[Any, Any]:
    """A term's ``from`` (default: the contract's start) and ``until`` (exclusive; default:
    none), checked against each other and the contract's term."""
    start = item.date("from", term[0])
    until = item.date("until", None)
    if isinstance(start, date) and isinstance(until, date) and until <= start:
        item.error("until", f"{until} must be after from {start}")
    elif isinstance(start, date) and isinstance(term[0], date):
        if start < term[0] or (term[1] is not None and start >= term[1]):
            item.error("from", f"{start} is outside the contract's term")
        elif isinstance(until, date) and term[1] is not None and until > term[1]:
            item.error("until", f"{until} is after the contract's end {term[1]}")
    return start, until


def _dated_terms(entry: Entry, ctx: Context, term: tuple[Any, Any]) -> list[dict[str, Any]]:
    """``discounts`` and custom ``prices``, each with optional ``from`` / ``until`` dates
    (SPEC §3 "Amendments"). Two terms of one kind for one product must not hold on the same
    day: the error names both and the first day they share."""
    terms: list[dict[str, Any]] = []
    labels: list[str] = []
    for field in ("discounts", "prices"):
        for item in entry.children(field):
            if field == "discounts":
                product = item.slug("product", None)
                percent = item.decimal("percent", column=(7, 4))
                if percent is not None and percent > 100:
                    item.error("percent", "must be at most 100")
                values = {"discount_percent": percent, "unit_price": None}
            else:
                product = item.slug("product")
                values = {"discount_percent": Decimal(0), "unit_price": item.decimal("unit_price")}
            product_known(item, ctx, "product", product)
            start, until = _dated(item, term)
            item.finish()
            row = {"product": product, "from": start, "until": until, **values}
            if isinstance(start, date):
                for other, label in zip(terms, labels, strict=True):
                    same_kind = (other["unit_price"] is None) == (row["unit_price"] is None)
                    if (
                        same_kind
                        and other["product"] == product
                        and isinstance(other["from"], date)
                        and _overlaps((start, until), (other["from"], other["until"]))
                    ):
                        kind = "discount" if field == "discounts" else "custom price"
                        item.error(
                            "from",
                            f"{product or 'the whole contract'} has another {kind} on "
                            f"{max(start, other['from'])} ({label})",
                        )
            terms.append(row)
            labels.append(item.label)
    return terms


def _contract(entry: Entry, ctx: Context) -> dict[str, Any]:
    key = entry.slug("key")
    org = entry.slug("org")
    if org and org not in ctx.keys("orgs", "slug") and not Org.objects.filter(slug=org).exists():
        entry.error("org", f"no org {org!r} in this file or the database")
    issuer = entry.slug("issuer")
    if (
        issuer
        and issuer not in ctx.keys("issuers")
        and not Issuer.objects.filter(key=issuer).exists()
    ):
        entry.error("issuer", f"no issuer {issuer!r} in this file or the database")
    rate_card = entry.slug("rate_card")
    card_currencies = {
        p["currency"] for p in ctx.parsed.get("rate_cards", []) if p["key"] == rate_card
    } | set(RateCard.objects.filter(key=rate_card).values_list("currency", flat=True))
    # The contract's currency is its rate card's; naming it is optional, and checked.
    if entry.raw.get("currency") is not None:
        currency = entry.currency("currency")
    else:
        entry.get("currency", None)
        currency = next(iter(card_currencies)) if len(card_currencies) == 1 else None
    if rate_card and not card_currencies:
        entry.error("rate_card", f"no rate card {rate_card!r} in this file or the database")
    elif currency and card_currencies - {currency}:
        entry.error(
            "currency",
            f"{currency} differs from rate card {rate_card!r} ({', '.join(card_currencies)})",
        )
    start = entry.date("start")
    end = entry.date("end", None)
    term = (start, end)
    if isinstance(start, date) and isinstance(end, date) and end <= start:
        entry.error("end", f"{end} must be after start {start}")
    elif isinstance(start, date) and org:
        # The loader files a section's entries only after the whole section; keep our own.
        earlier = ctx.parsed.setdefault("contracts (terms so far)", [])
        for other in earlier:
            if other["org"] == org and _overlaps(term, (other["start"], other["end"])):
                entry.error("start", f"overlaps contract {other['key']!r} of org {org!r}")
        earlier.append({"key": key, "org": org, "start": start, "end": end})
        clashes = Contract.objects.filter(org__slug=org).exclude(key=key)
        for other_key, other_start, other_end in clashes.values_list("key", "start", "end"):
            if _overlaps(term, (other_start, other_end)):
                entry.error("start", f"overlaps contract {other_key!r} of org {org!r}")
    billing_day = entry.integer("billing_day", 1, minimum=1)
    if isinstance(billing_day, int) and billing_day > 28:
        entry.error("billing_day", "must be between 1 and 28 (every month has that day)")

    prices = _dated_terms(entry, ctx, term)

    commitments: dict[str, Decimal] = {}
    for item in entry.children("spend_commitments"):
        amount = item.decimal("amount", column=(20, 4))
        per = item.choice("per", SpendCommitment.Per.values, "period")
        item.finish()
        if per in commitments:
            item.error("per", f"a contract has at most one commitment per {per}")
        if per == SpendCommitment.Per.TERM and end is None:
            item.error("per", "a per-term commitment needs a contract end")
        commitments[per] = amount

    credits = []
    for item in entry.children("credits"):
        credit_key = item.slug("key")
        amount = item.decimal("amount", positive=True, column=(20, 4))
        credit_currency = item.text("currency", currency)
        if credit_currency != currency:
            item.error("currency", f"{credit_currency} differs from the contract's {currency}")
        effective = item.date("effective", start)
        expires = item.date("expires", None)
        if isinstance(effective, date) and isinstance(expires, date) and expires <= effective:
            item.error("expires", f"{expires} must be after effective {effective}")
        existing = CreditGrant.objects.filter(org__slug=org, key=credit_key).first()
        if existing and amount is not None and amount < existing.amount - existing.balance:
            item.error(
                "amount",
                f"{amount} is less than the {existing.amount - existing.balance} already drawn",
            )
        credits.append(
            {
                "key": credit_key,
                "amount": amount,
                "currency": credit_currency,
                "effective": effective,
                "expires": expires,
                "priority": item.integer("priority", 1),
            }
        )
        item.finish()

    return {
        "key": key,
        "org": org,
        "issuer": issuer,
        "rate_card": rate_card,
        "currency": currency,
        "start": start,
        "end": end,
        "billing_day": billing_day,
        "payment_terms_days": entry.integer("payment_terms_days", 30),
        "prices": prices,
        "reservations": _reservations(entry, ctx, term),
        "commitments": commitments,
        "credits": credits,
    }


def _apply_contract(v: dict[str, Any]) -> tuple[Model, str]:
    org = Org.objects.get(slug=v["org"])
    contract, outcome = upsert(
        Contract,
        {"org": org, "key": v["key"]},
        {
            "issuer": Issuer.objects.get(key=v["issuer"]),
            "rate_card_key": v["rate_card"],
            "currency": v["currency"],
            "start": v["start"],
            "end": v["end"],
            "billing_day": v["billing_day"],
            "payment_terms_days": v["payment_terms_days"],
        },
    )
    keys = {p["product"] for p in v["prices"]} | {r["product"] for r in v["reservations"]}
    products = {p.key: p for p in Product.objects.filter(key__in=keys - {None})}
    changed = False

    # The catalog owns the contract's own terms; those an amendment added are left alone.
    own_prices = contract.prices.filter(amendment__isnull=True)
    wanted_prices = {
        (p["product"], p["discount_percent"], p["unit_price"], p["from"], p["until"])
        for p in v["prices"]
    }
    current_prices = {
        (
            p.product.key if p.product else None,
            p.discount_percent,
            p.unit_price,
            p.valid_from,
            p.valid_until,
        )
        for p in own_prices.select_related("product")
    }
    if wanted_prices != current_prices:
        changed = True
        own_prices.delete()
        ContractPrice.objects.bulk_create(
            ContractPrice(
                org=org,
                contract=contract,
                product=products.get(p) if p else None,
                discount_percent=d,
                unit_price=u,
                valid_from=start,
                valid_until=until,
            )
            for p, d, u, start, until in wanted_prices
        )

    kept = []
    for r in v["reservations"]:
        reservation, result = upsert(
            Reservation,
            {
                "org": org,
                "contract": contract,
                "product": products[r["product"]],
                "start": r["start"],
                "amendment": None,
            },
            {k: r[k] for k in ("quantity", "unit_price", "burst_unit_price", "end")},
        )
        kept.append(reservation.pk)
        wanted = {(s["starts"], s["quantity"]) for s in r["ramps"]}
        current = set(reservation.ramps.values_list("starts", "quantity"))
        if wanted != current:
            reservation.ramps.all().delete()
            ReservationRamp.objects.bulk_create(
                ReservationRamp(org=org, reservation=reservation, starts=s, quantity=q)
                for s, q in wanted
            )
            result = "updated"
        changed = changed or result != "unchanged"
    stale = contract.reservations.filter(amendment__isnull=True).exclude(pk__in=kept)
    changed = stale.delete()[0] > 0 or changed

    wanted_commitments = set(v["commitments"].items())
    if wanted_commitments != set(contract.commitments.values_list("per", "amount")):
        changed = True
        contract.commitments.all().delete()
        SpendCommitment.objects.bulk_create(
            SpendCommitment(org=org, contract=contract, per=per, amount=amount)
            for per, amount in wanted_commitments
        )

    for c in v["credits"]:
        changed = _apply_credit(org, contract, c) or changed
    return contract, "updated" if outcome == "unchanged" and changed else outcome


def _apply_credit(org: Org, contract: Contract, c: dict[str, Any]) -> bool:
    grant = lock_credit_grant(org_id=org.pk, key=c["key"])
    values = {k: c[k] for k in ("currency", "effective", "expires", "priority")}
    if grant is None:
        CreditGrant.objects.create(
            org=org,
            contract=contract,
            key=c["key"],
            amount=c["amount"],
            balance=c["amount"],
            **values,
        )
        return True
    changed = [k for k, value in values.items() if getattr(grant, k) != value]
    if grant.contract_id != contract.pk:
        changed.append("contract")
    if grant.amount != c["amount"]:
        # A larger or smaller grant moves the balance by the same delta (never below 0).
        CreditGrant.objects.filter(pk=grant.pk).update(
            amount=c["amount"], balance=F("balance") + (c["amount"] - grant.amount)
        )
    for name in changed:
        setattr(grant, name, values.get(name, contract))
    if changed:
        grant.save(update_fields=changed)
    return bool(changed) or grant.amount != c["amount"]


CONTRACTS = Section("contracts", _contract, _apply_contract, natural_key=("org", "key"))
