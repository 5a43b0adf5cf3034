"""A worked month for invoicing tests: rated periods built as the rating engine leaves them."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing.models import (
    BillingPeriod,
    Contract,
    CreditDraw,
    CreditGrant,
    Issuer,
    Product,
    RatedCharge,
)

from ...factories import (
    BillingPeriodFactory,
    ContractFactory,
    IssuerFactory,
    MeterFactory,
    OrgFactory,
    ProductFactory,
    RatedChargeFactory,
)
from ...support.fx import ecb_rates

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
AFTER_GRACE = datetime(2026, 11, 3, tzinfo=UTC)  # Nov 1 + 2 grace days
Kind = RatedCharge.Kind
# One rated charge as ``rated_period`` takes it: (product, kind, line, quantity, unit price,
# amount); the three figures are decimal strings.
Charge = tuple[Product, str, int, str, str, str]


@dataclass
class World:
    issuer: Issuer
    h100: Product
    llama: Product


@pytest.fixture
def world(db: None) -> World:
    ecb_rates()
    meter = MeterFactory.create(key="gpu_time")
    tokens = MeterFactory.create(key="llm_input_tokens", event_type="llm.tokens")
    return World(
        issuer=IssuerFactory.create(address="12 rue de la Paix\n75002 Paris"),
        h100=ProductFactory.create(
            key="h100-eu-north", name="NVIDIA H100 GPU-hour, eu-north", meter=meter
        ),
        llama=ProductFactory.create(
            key="llama-70b-input",
            name="Llama 3.1 70B input, 1M tokens",
            meter=tokens,
            unit="1M tokens",
            unit_size=Decimal(1_000_000),
        ),
    )


def rated_period(
    world: World,
    *,
    slug: str = "acme",
    country: str = "FR",
    vat_id: str = "FR44732829320",
    start: datetime = OCT,
    end: datetime = NOV,
    issuer: Issuer | None = None,
    contract: Contract | None = None,
    credits: Decimal = Decimal(0),
    charges: Sequence[Charge] | None = None,
    list_prices: Mapping[tuple[str, str, int], str] | None = None,
) -> BillingPeriod:
    """A closing period rated through its end. ``charges``: (product, kind, line, quantity,
    unit price, amount); ``list_prices``: the list price (before a discount) of the charges
    so keyed by (product key, kind, line), their unit price being the discounted one."""
    org = OrgFactory.create(
        slug=slug, name=f"{slug.title()} AI SAS", country=country, vat_id=vat_id,
        billing_email=f"ap@{slug}.example", billing_address="1 avenue de l'Opéra\n75001 Paris",
    )  # fmt: skip
    contract = contract or ContractFactory.create(
        org=org, key=f"{slug}-2026", issuer=issuer or world.issuer, start=date(2026, 1, 1)
    )
    period = BillingPeriodFactory.create(contract=contract, org=org, start=start, end=end)
    for product, kind, line, quantity, unit_price, amount in charges or []:
        RatedChargeFactory.create(
            period=period,
            org=org,
            product=product,
            kind=kind,
            line=line,
            quantity=Decimal(quantity),
            unit_price=Decimal(unit_price),
            amount=Decimal(amount),
            list_unit_price=_list_price(list_prices, product, kind, line),
        )
    if credits:
        grant = CreditGrant.objects.create(
            org=org, key=f"welcome-{period.pk}", amount=Decimal("1000.00"), currency="USD",
            balance=Decimal("1000.00") - credits, effective=date(2026, 1, 1),
        )  # fmt: skip
        CreditDraw.objects.create(
            org=org, grant=grant, period=period, amount=credits, balance_after=grant.balance
        )
    return period


def _list_price(
    list_prices: Mapping[tuple[str, str, int], str] | None, product: Product, kind: str, line: int
) -> Decimal | None:
    listed = (list_prices or {}).get((product.key, str(kind), line))
    return None if listed is None else Decimal(listed)


# The worked scenario's Llama tier-1 line under a 10% discount: list 1.00, net 0.90.
DISCOUNTED_LLAMA = {("llama-70b-input", "on_demand", 0): "1.00"}


def worked_charges(world: World) -> list[Charge]:
    """The worked scenario: subtotal 13,592.75 (see test_export)."""
    return [
        (world.h100, Kind.RESERVATION, 0, "5952", "2.10", "12499.20"),  # 8 GPUs × 744 h
        (world.h100, Kind.COVERED, 0, "5000.5", "0", "0.00"),
        (world.h100, Kind.BURST, 0, "12.25", "2.40", "29.40"),
        (world.llama, Kind.ON_DEMAND, 0, "1000", "0.90", "900.00"),
        (world.llama, Kind.ON_DEMAND, 1, "234.5", "0.70", "164.15"),
    ]
