"""The demo's writes: logins, the allocation schedule, the deal desk's deals, acme's alerts and
webhook endpoint. Everything else the demo does goes through the existing commands and
services (``demo.pipeline``)."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from billing.alerts.models import Alert
from billing.alerts.services import alert_create
from billing.deals.models import Deal
from billing.deals.selectors import running_contract
from billing.deals.services import LineInput, deal_approve, deal_create, deal_sign, deal_submit
from billing.models import Contract, Product
from metering.models import Allocation
from metering.services import allocation_create
from tenancy.models import Membership, Org, StaffRole
from tenancy.services import staff_user_create
from webhooks.delivery import secrets_in_force
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_endpoint_create, webhook_endpoint_update

from .scenario import Hold, devices


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    who: str
    home: str  # the page to start from


# Local demo only: fixed, printed passwords, reset on every run.
STAFF = [
    Login("demo-am", "demo-am-pass", "account manager (acme, globex, hooli)", "/deals/"),
    Login(
        "fin", "demo-fin-pass", "finance (deal approvals; invoices API)", "/deals/ /api/v1/invoices"
    ),
    Login("ops", "demo-ops-pass", "operator (Django admin)", "/admin/"),
]
STAFF_ROLES = {
    "demo-am": StaffRole.ACCOUNT_MANAGER,
    "fin": StaffRole.FINANCE,
    "ops": StaffRole.OPERATOR,
}
CUSTOMER = Login("ada", "demo-ada-pass", "customer: owner of acme", "/portal/")


def staff_logins_ensure() -> list[Login]:
    """The staff logins (before the catalog: orgs name ``demo-am`` as account manager)."""
    for login in STAFF:
        staff_user_create(
            username=login.username, role=STAFF_ROLES[login.username], password=login.password
        )
    return STAFF


@transaction.atomic
def customer_login_ensure(*, org: Org) -> Login:
    """``ada``, owner of ``org``; idempotent (the password is set again)."""
    user, _ = User.objects.get_or_create(username=CUSTOMER.username)
    user.email = f"{CUSTOMER.username}@{org.slug}.example"  # alert emails (console backend)
    user.set_password(CUSTOMER.password)
    user.save()
    Membership.objects.get_or_create(org=org, user=user, defaults={"role": Membership.Role.OWNER})
    return CUSTOMER


def allocations_write(*, holds: list[Hold]) -> int:
    """Record the schedule as operators do (what ``POST /api/v1/allocations`` calls); an
    allocation already recorded is left alone, so a re-run adds nothing. Returns how many
    were new."""
    fleet = devices()
    orgs = {org.slug: org for org in Org.objects.filter(slug__in={h.org for h in holds})}
    created = 0
    for hold in holds:
        device = fleet[hold.device]
        exists = Allocation.objects.filter(
            org=orgs[hold.org],
            device__node=device.node,
            device__uuid=hold.device,
            start=hold.start,
            end=hold.end,
        ).exists()
        if not exists:
            allocation_create(
                org=orgs[hold.org],
                node=device.node,
                device_uuid=hold.device,
                start=hold.start,
                end=hold.end,
            )
            created += 1
    return created


DEMO_ALERTS: list[dict[str, Any]] = [
    # acme's 4 reserved H100s alone cost about 6,200 USD a month: this fires every month.
    {"kind": "cost_above", "threshold": "5000", "name": "Monthly budget"},
    # The 500 USD welcome credit is drawn in the first month.
    {"kind": "credits_below", "threshold": "100", "name": "Credits almost gone"},
]
SINK_DESCRIPTION = "acme's ERP (the demo's local receiver)"


@transaction.atomic
def notifications_ensure(*, org: Org, url: str) -> list[str]:
    """acme's alerts and its webhook endpoint (pointed at ``url``), as its owner would set
    them in the portal; idempotent. Returns the endpoint's secrets in force."""
    for wanted in DEMO_ALERTS:
        if not Alert.objects.filter(org=org, name=wanted["name"]).exists():
            alert_create(org=org, **wanted)
    endpoint = WebhookEndpoint.objects.filter(org=org, description=SINK_DESCRIPTION).first()
    if endpoint is None:
        endpoint, _ = webhook_endpoint_create(org=org, url=url, description=SINK_DESCRIPTION)
    else:
        webhook_endpoint_update(endpoint=endpoint, url=url, enabled=True)
    return secrets_in_force(endpoint=endpoint, at=timezone.now())


@dataclass(frozen=True)
class DemoDeal:
    deal: Deal
    words: str


EXPANSION = "Expansion: +2 H100 eu-north"
GLOBEX_RESERVED = "Globex: from on demand to 16 reserved H100 us-east"


def deals_ensure(*, today: date) -> list[DemoDeal]:
    """The deal desk as the demo leaves it, through the deal services as the pages call them:
    acme's contract amended by an expansion of 2 H100 from three days ago (drafted by
    ``demo-am``, approved by ``fin``, signed), and globex, on demand only, offered 16 reserved
    H100 from next month, awaiting finance's approval. Idempotent by title."""
    am = User.objects.get(username="demo-am")
    finance = User.objects.get(username="fin")
    done = []
    acme = Org.objects.get(slug="acme")
    expansion = Deal.objects.filter(org=acme, title=EXPANSION).first()
    if expansion is None:
        contract = running_contract(org=acme, on=today)
        assert contract is not None
        start = max(today.replace(day=1), today - timedelta(days=3))
        expansion = _draft(am, acme, contract, EXPANSION, "h100-eu-north", 2, start, "2.00")
        expansion = deal_submit(actor=am, deal_id=expansion.pk)
        if expansion.status == Deal.Status.PENDING_APPROVAL:
            deal_approve(actor=finance, deal_id=expansion.pk, comment="Expansion at 2.00: ok.")
        expansion = deal_sign(actor=am, deal_id=expansion.pk)
    done.append(DemoDeal(expansion, f"signed, amends {expansion.amends}"))
    globex = Org.objects.get(slug="globex")
    reserved = Deal.objects.filter(org=globex, title=GLOBEX_RESERVED).first()
    if reserved is None:
        contract = running_contract(org=globex, on=today)
        assert contract is not None
        start = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        reserved = _draft(am, globex, contract, GLOBEX_RESERVED, "h100-us-east", 16, start, "1.90")
        reserved = deal_submit(actor=am, deal_id=reserved.pk)
    done.append(DemoDeal(reserved, reserved.get_status_display().lower()))
    return done


def _draft(
    am: User,
    org: Org,
    contract: Contract,
    title: str,
    product: str,
    gpus: int,
    start: date,
    unit_price: str,
) -> Deal:
    return deal_create(
        actor=am,
        org=org,
        currency=contract.currency,
        rate_card_key=contract.rate_card_key,
        issuer=contract.issuer,
        amends=contract,
        title=title,
        lines=[
            LineInput(
                product=Product.objects.get(key=product),
                quantity=gpus,
                start=start,
                term_months=12,
                unit_price=Decimal(unit_price),
            )
        ],
    )
