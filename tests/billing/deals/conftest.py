from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.deals.services import deal_create
from billing.deals.terms import LineInput
from billing.models import Issuer, Product
from tenancy.models import Membership, Org

from ...factories import MembershipFactory, staff_user

POOLS = [{"gpu_model": "H100", "region": "eu-north", "gpus": 100, "from": "2026-01-01"}]

# acme is on contract acme-c (October and November 2026, 10 % off H100 on demand);
# globex holds 88 H100 in eu-north from 2026-12-01 to 2027-03-01.
CONTRACTS = [
    {"key": "acme-c", "org": "acme", "issuer": "tessera-fr", "rate_card": "list-usd",
     "start": "2026-10-01", "end": "2026-12-01",
     "discounts": [{"product": "h100", "percent": "10"}]},
    {"key": "globex-c", "org": "globex", "issuer": "tessera-fr", "rate_card": "list-usd",
     "start": "2026-12-01", "end": "2027-03-01",
     "reservations": [{"product": "h100", "quantity": 88, "unit_price": "2.20"}]},
]  # fmt: skip


@pytest.fixture
def desk(catalog: Any) -> None:
    catalog(*CONTRACTS, capacity_pools=POOLS)


@pytest.fixture
def am(desk: None) -> Any:
    """acme's account manager."""
    user = staff_user("alice", "account_manager")
    Org.objects.filter(slug="acme").update(account_manager=user)
    return user


@pytest.fixture
def other_am(desk: None) -> Any:
    """globex's account manager."""
    user = staff_user("bob", "account_manager")
    Org.objects.filter(slug="globex").update(account_manager=user)
    return user


@pytest.fixture
def finance(desk: None) -> Any:
    return staff_user("fiona", "finance")


@pytest.fixture
def operator(desk: None) -> Any:
    return staff_user("oscar", "operator")


@pytest.fixture
def customer(desk: None) -> Any:
    return MembershipFactory.create(
        org=Org.objects.get(slug="acme"), role=Membership.Role.OWNER
    ).user


def line(**overrides: Any) -> LineInput:
    """8 H100 from 2027-01-01 for 3 months at 2.00, ramping to 16 on 2027-02-01."""
    values: dict[str, Any] = {
        "product": Product.objects.get(key="h100"),
        "quantity": 8,
        "start": date(2027, 1, 1),
        "term_months": 3,
        "unit_price": Decimal("2.00"),
        "ramp": [{"from": date(2027, 2, 1), "quantity": 16}],
    }
    return LineInput(**{**values, **overrides})


def draft(actor: Any, *lines: LineInput, org: str = "acme") -> Any:
    return deal_create(
        actor=actor,
        org=Org.objects.get(slug=org),
        currency="USD",
        rate_card_key="list-usd",
        issuer=Issuer.objects.get(key="tessera-fr"),
        lines=list(lines) or [line()],
        title="H100 expansion",
    )
