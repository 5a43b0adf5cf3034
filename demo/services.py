"""The demo's writes: logins, the allocation schedule, acme's alerts and webhook endpoint.
Everything else the demo does goes through the existing commands and services
(``demo.pipeline``)."""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from billing.alerts.models import Alert
from billing.alerts.services import alert_create
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
