"""Price models as pure functions of a period's total quantity (SPEC §3, §6 step 3).

Tiers' ``up_to`` are in billing units and reset every period. A discount lowers each unit
(or block) price, kept at 12 decimal places; each line is rounded once, by the caller's
currency and rounding mode. A discounted price keeps its list price beside it (EN 16931
BT-148 "Item gross price"; the discounted one is the net price, BT-146), so invoices show
the discount as such (issue 14).
"""

import math
from dataclasses import dataclass
from decimal import Decimal

from ..models import Price
from ..money import quantize_price, quantize_quantity, round_amount

Model = Price.Model
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # billing units; None: no upper bound
    unit_price: Decimal
    list_unit_price: Decimal | None = None  # before the discount; None: not discounted


@dataclass(frozen=True)
class EffectivePrice:
    """A product's on-demand price for one contract: the rate card's model, the contract's
    custom price (per unit) or discount already applied to every unit or block price.
    ``list_unit_price`` (and each tier's): the price before the discount, None when no
    discount applies (list price or custom price)."""

    model: str
    unit_price: Decimal | None = None
    package_size: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    list_unit_price: Decimal | None = None

    @property
    def reference_unit_price(self) -> Decimal:
        """One billing unit's price, for a burst without its own price: the unit price, the
        first tier's price, or a block's price per unit."""
        if self.model == Model.PER_UNIT:
            assert self.unit_price is not None
            return self.unit_price
        if self.model == Model.PACKAGE:
            assert self.unit_price is not None
            assert self.package_size
            return quantize_price(self.unit_price / self.package_size)
        return self.tiers[0].unit_price

    @property
    def reference_list_price(self) -> Decimal | None:
        """``reference_unit_price`` before the discount; None when not discounted."""
        if self.model == Model.PER_UNIT:
            return self.list_unit_price
        if self.model == Model.PACKAGE:
            if self.list_unit_price is None:
                return None
            assert self.package_size
            return quantize_price(self.list_unit_price / self.package_size)
        return self.tiers[0].list_unit_price


@dataclass(frozen=True)
class PricedLine:
    line: int
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    description: str = ""
    list_unit_price: Decimal | None = None  # before the discount; None: not discounted


def discounted(price: Decimal, percent: Decimal) -> Decimal:
    return quantize_price(price * (HUNDRED - percent) / HUNDRED)


def discount_percent(list_price: Decimal, net_price: Decimal) -> Decimal:
    """The percent off ``list_price`` that gives ``net_price``, to the 4 places a contract's
    discount has (``ContractPrice.discount_percent``), trailing zeros dropped: (2.50, 2.25)
    → 10. 0 for a zero list price."""
    if not list_price:
        return Decimal(0)
    percent = (list_price - net_price) / list_price * HUNDRED
    return percent.quantize(Decimal("0.0001")).normalize()


def list_price_words(list_price: Decimal, net_price: Decimal) -> str:
    """A discounted line's discount from its stored prices, as the rating states it:
    "10% off list price 2.50" (the price with at least 2 decimals)."""
    whole, _, fraction = f"{list_price.normalize():f}".partition(".")
    percent = f"{discount_percent(list_price, net_price):f}"
    return f"{percent}% off list price {whole}.{fraction.ljust(2, '0')}"


def effective_price(
    price: Price | None, *, custom_unit_price: Decimal | None, discount_percent: Decimal
) -> EffectivePrice | None:
    """The price a contract pays on demand; None when the product is not priced for it.
    A custom price takes no discount and states no list price (SPEC §6 step 3)."""
    if custom_unit_price is not None:
        return EffectivePrice(Model.PER_UNIT, unit_price=custom_unit_price)
    if price is None:
        return None

    def listed(value: Decimal) -> Decimal | None:
        return quantize_price(value) if discount_percent else None

    tiers = tuple(
        Tier(
            None if t["up_to"] is None else Decimal(t["up_to"]),
            discounted(Decimal(t["unit_price"]), discount_percent),
            listed(Decimal(t["unit_price"])),
        )
        for t in price.tiers
    )
    unit = price.unit_price
    return EffectivePrice(
        price.model,
        unit_price=None if unit is None else discounted(unit, discount_percent),
        package_size=price.package_size,
        tiers=tiers,
        list_unit_price=None if unit is None else listed(unit),
    )


@dataclass(frozen=True)
class Piece:
    """Part of a period's quantity at one price, before rounding: ``tier`` is the tier index
    (0 for per-unit and package); ``quantity`` is in blocks for a package."""

    tier: int
    quantity: Decimal
    unit_price: Decimal
    label: str = ""
    list_unit_price: Decimal | None = None  # before the discount; None: not discounted


def price_pieces(
    price: EffectivePrice,
    quantity: Decimal,
    *,
    before: Decimal = Decimal(0),
    total: Decimal | None = None,
) -> list[Piece]:
    """``quantity`` billing units of a period that come after ``before`` units of it, priced
    by the model over the period's ``total`` (default: ``before + quantity``).

    Graduated: the units fill the tiers from position ``before`` on. Volume: every unit at
    the tier the period's total reaches. Package: the blocks this part starts (a block
    started by earlier units is theirs). With ``before`` 0 and no ``total``, this is the
    whole period's pricing (SPEC §3 price models)."""
    quantity = quantize_quantity(quantity)
    if quantity <= 0:
        return []
    total = before + quantity if total is None else total
    if price.model == Model.PER_UNIT:
        assert price.unit_price is not None
        return [Piece(0, quantity, price.unit_price, list_unit_price=price.list_unit_price)]
    if price.model == Model.PACKAGE:
        assert price.unit_price is not None
        assert price.package_size
        size = price.package_size
        blocks = Decimal(math.ceil((before + quantity) / size) - math.ceil(before / size))
        label = f"{blocks} × {size} ({quantity} used)"
        return [Piece(0, blocks, price.unit_price, label, price.list_unit_price)]
    if price.model == Model.VOLUME:
        for index, tier in enumerate(price.tiers):
            if tier.up_to is None or total <= tier.up_to:
                label = _tier_label(price.tiers, index)
                return [Piece(index, quantity, tier.unit_price, label, tier.list_unit_price)]
        raise ValueError("volume tiers must end with an open tier")
    pieces = []
    floor = Decimal(0)
    top = before + quantity
    for index, tier in enumerate(price.tiers):
        ceiling = top if tier.up_to is None else min(top, tier.up_to)
        low = max(floor, before)
        if ceiling > low:
            label = _tier_label(price.tiers, index)
            pieces.append(Piece(index, ceiling - low, tier.unit_price, label, tier.list_unit_price))
        if tier.up_to is None or top <= tier.up_to:
            break
        floor = tier.up_to
    return pieces


def price_quantity(
    price: EffectivePrice, quantity: Decimal, *, currency: str, rounding: str
) -> list[PricedLine]:
    """The on-demand lines for a period's total ``quantity`` (billing units)."""
    return [
        PricedLine(
            p.tier,
            p.quantity,
            p.unit_price,
            round_amount(p.quantity * p.unit_price, currency, rounding),
            p.label,
            p.list_unit_price,
        )
        for p in price_pieces(price, quantity)
    ]


def _tier_label(tiers: tuple[Tier, ...], index: int) -> str:
    lower = Decimal(0) if index == 0 else tiers[index - 1].up_to
    upper = tiers[index].up_to
    return f"tier {index + 1}: {lower}–{upper if upper is not None else '∞'}"
