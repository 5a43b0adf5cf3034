"""Deal reads, scoped to what the caller may see (``access``)."""

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import QuerySet

from ..models import Product, RateCard
from . import access
from .capacity import Fit, PoolCapacity, capacity_overview, deal_fit
from .economics import Economics, EconomicsError, deal_economics
from .errors import DealError
from .models import Deal, DealEvent, DealLine


def deals_for(*, user: Any, status: str | None = None) -> QuerySet[Deal]:
    deals = Deal.objects.filter(org__in=access.deal_orgs(user)).select_related(
        "org", "issuer", "created_by", "contract"
    )
    return deals.filter(status=status) if status else deals


def deal_for(*, user: Any, deal_id: int) -> Deal:
    """One deal the caller may see. Refused alike whether it exists or not (403)."""
    deal = deals_for(user=user).filter(pk=deal_id).first()
    if deal is None:
        raise DealError("permission_denied", f"You may not see deal {deal_id}.")
    return deal


def visible_org_ids(*, user: Any) -> set[int]:
    return set(access.deal_orgs(user).values_list("pk", flat=True))


def gpu_products() -> QuerySet[Product]:
    """Products a deal can reserve: those naming a pool (gpu_model and region)."""
    return Product.objects.filter(filter__has_key="gpu_model").filter(filter__has_key="region")


def rate_card_choices() -> list[tuple[str, str]]:
    """(key, currency) of each rate card family."""
    return sorted(set(RateCard.objects.values_list("key", "currency")))


@dataclass(frozen=True)
class Actions:
    edit: bool
    submit: bool
    approve: bool
    reject: bool
    sign: bool


@dataclass(frozen=True)
class DealView:
    deal: Deal
    lines: list[DealLine]
    economics: Economics | None
    economics_error: str
    fit: Fit
    events: list[DealEvent]
    actions: Actions


def deal_view(*, user: Any, deal: Deal) -> DealView:
    lines = list(deal.lines.select_related("product__meter"))
    try:
        economics: Economics | None = deal_economics(deal=deal, lines=lines)
        error = ""
    except EconomicsError as exc:
        economics, error = None, str(exc)
    fit = deal_fit(deal=deal, lines=lines, visible_org_ids=visible_org_ids(user=user))
    events = list(deal.events.select_related("actor"))
    decide = access.may_decide(user, deal)
    actions = Actions(
        edit=access.may_edit(user, deal),
        submit=access.may_submit(user, deal),
        approve=decide,
        reject=decide,
        sign=access.may_sign(user, deal) and deal.status == Deal.Status.APPROVED,
    )
    return DealView(deal, lines, economics, error, fit, events, actions)


def capacity_for(*, user: Any, start: date, months: int = 24) -> list[PoolCapacity]:
    return capacity_overview(start=start, months=months, visible_org_ids=visible_org_ids(user=user))
