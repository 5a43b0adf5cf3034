"""Deal reads, scoped to what the caller may see (``access``)."""

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from tenancy.models import Org

from ..models import Contract, Product, RateCard
from ..selectors import ContractTerms, contract_terms
from . import access
from .capacity import Fit, PoolCapacity, capacity_overview, deal_fit
from .economics import Economics, EconomicsError, deal_economics
from .errors import DealError
from .models import Deal, DealEvent, DealLine, DealTerm


def deals_for(*, user: Any, status: str | None = None) -> QuerySet[Deal]:
    deals = Deal.objects.filter(org__in=access.deal_orgs(user)).select_related(
        "org", "issuer", "created_by", "contract", "amends", "amendment"
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


def rate_card_choices() -> list[tuple[str, str, str]]:
    """(key, name, currency) of each rate card family; the name of its latest version, else
    its key."""
    cards: dict[str, tuple[str, str, str]] = {}
    for key, name, currency in RateCard.objects.order_by("key", "effective_from").values_list(
        "key", "name", "currency"
    ):
        cards[key] = (key, name or key, currency)
    return sorted(cards.values())


def running_contract(*, org: Org, on: date | None = None) -> Contract | None:
    """The org's contract in force on ``on`` (default: today), else its next one: the
    contract a new deal amends by default (None: the deal makes a new contract)."""
    on = on or timezone.now().date()
    contracts = Contract.objects.filter(org=org)
    in_force = contracts.filter(start__lte=on).filter(Q(end__isnull=True) | Q(end__gt=on)).first()
    return in_force or contracts.filter(start__gt=on).order_by("start").first()


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
    terms: list[DealTerm] = field(default_factory=list)
    # Finance looking at a pending deal whose terms they wrote: another finance user decides.
    four_eyes: bool = False


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
    four_eyes = (
        access.access_finance(user)
        and deal.status == Deal.Status.PENDING_APPROVAL
        and access.wrote_terms(user, deal)
    )
    terms = list(deal.terms.select_related("product"))
    return DealView(deal, lines, economics, error, fit, events, actions, terms, four_eyes)


def capacity_for(*, user: Any, start: date, months: int = 24) -> list[PoolCapacity]:
    return capacity_overview(start=start, months=months, visible_org_ids=visible_org_ids(user=user))


def contract_view(*, user: Any, contract_id: int) -> ContractTerms:
    """One contract of an org the caller may see on the deal desk, with its terms and
    amendments. Refused alike whether it exists or not (403)."""
    terms = contract_terms(orgs=access.deal_orgs(user), contract_id=contract_id)
    if terms is None:
        raise DealError("permission_denied", f"You may not see contract {contract_id}.")
    return terms
