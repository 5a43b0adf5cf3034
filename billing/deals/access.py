"""Who may do what on the deal desk. One policy for the pages and the API.

Account managers work on the orgs assigned to them (``Org.account_manager``) and nothing
else; finance sees every deal, approves or rejects, and may sign; everyone else (customers,
operators) is refused. A deal one may not see is refused the same way whether or not it
exists, so that ids leak nothing.
"""

from typing import Any

from django.db.models import QuerySet

from tenancy.access import has_role
from tenancy.models import Org, StaffRole

from .models import Deal, DealEvent

AM, FINANCE = StaffRole.ACCOUNT_MANAGER, StaffRole.FINANCE
EDITABLE = (Deal.Status.DRAFT, Deal.Status.REJECTED)


def may_use_desk(user: Any) -> bool:
    return has_role(user, AM, FINANCE)


def deal_orgs(user: Any) -> QuerySet[Org]:
    """The orgs whose deals ``user`` may see."""
    if has_role(user, FINANCE):
        return Org.objects.all()
    if has_role(user, AM):
        return Org.objects.filter(account_manager=user)
    return Org.objects.none()


def draftable_orgs(user: Any) -> QuerySet[Org]:
    """The orgs ``user`` may draft deals for: their own, as account manager."""
    if has_role(user, AM):
        return Org.objects.filter(account_manager=user)
    return Org.objects.none()


def manages(user: Any, deal: Deal) -> bool:
    return has_role(user, AM) and deal.org.account_manager_id == user.pk


def may_edit(user: Any, deal: Deal) -> bool:
    return manages(user, deal) and deal.status in EDITABLE


def may_submit(user: Any, deal: Deal) -> bool:
    return may_edit(user, deal)


def wrote_terms(user: Any, deal: Deal) -> bool:
    """Whether ``user`` created, edited or submitted the deal's terms (its trail says)."""
    Action = DealEvent.Action
    return deal.created_by_id == user.pk or (
        DealEvent.objects.filter(
            org_id=deal.org_id,
            deal=deal,
            actor_id=user.pk,
            action__in=(Action.CREATED, Action.EDITED, Action.SUBMITTED),
        ).exists()
    )


def may_decide(user: Any, deal: Deal) -> bool:
    """Finance, on a pending deal whose terms they did not write (four eyes)."""
    return (
        has_role(user, FINANCE)
        and deal.status == Deal.Status.PENDING_APPROVAL
        and not wrote_terms(user, deal)
    )


def may_sign(user: Any, deal: Deal) -> bool:
    return (manages(user, deal) or has_role(user, FINANCE)) and deal.status in (
        Deal.Status.APPROVED,
        Deal.Status.SIGNED,
    )


def access_finance(user: Any) -> bool:
    return has_role(user, FINANCE)
