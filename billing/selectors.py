from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import F, Prefetch, QuerySet
from django.utils import timezone

from tenancy.models import Org

from .models import (
    Amendment,
    BillingPeriod,
    Contract,
    ContractPrice,
    CreditGrant,
    Price,
    Product,
    RateCard,
    RatedCharge,
    Reservation,
    ReservationUsage,
    SpendCommitment,
)
from .rating.credits import drawn_for
from .rating.engine import FORECAST_METHOD

ZERO = Decimal(0)


def products_list() -> QuerySet[Product]:
    """The catalog is the same for every org."""
    return Product.objects.select_related("meter")


@dataclass(frozen=True)
class ProductCost:
    product: str
    name: str
    unit: str
    usage: Decimal  # billing units so far this period
    amount: Decimal  # rated amount so far (reservation + burst + on-demand)


@dataclass(frozen=True)
class ReservationUse:
    product: str
    start: date
    end: date
    quantity: Decimal  # at its start (ramps change it)
    amendment: int | None  # the amendment that added it (None: the contract's own)
    reserved: Decimal  # unit-hours so far
    used: Decimal
    covered: Decimal
    burst: Decimal
    utilization: Decimal  # covered / reserved, percent, 2 places
    name: str = ""  # the product's name


@dataclass(frozen=True)
class CreditLeft:
    key: str
    amount: Decimal
    balance: Decimal
    currency: str
    expires: date | None
    applied_this_period: Decimal


@dataclass(frozen=True)
class Summary:
    org: str
    period: BillingPeriod | None
    currency: str
    rated_as_of: datetime | None
    products: list[ProductCost] = field(default_factory=list)
    charges: list[RatedCharge] = field(default_factory=list)
    cost_so_far: Decimal = Decimal(0)
    credits_applied: Decimal = Decimal(0)
    reservations: list[ReservationUse] = field(default_factory=list)
    credits: list[CreditLeft] = field(default_factory=list)
    forecast: Decimal | None = None
    forecast_method: str = FORECAST_METHOD


def current_period(*, org: Org, at: datetime) -> BillingPeriod | None:
    """The org's period that contains ``at``, else its latest one begun by then."""
    periods = BillingPeriod.objects.filter(org=org, start__lte=at).order_by("-start")
    return periods.filter(end__gt=at).first() or periods.first()


def period_starting_in(*, org: Org, year: int, month: int) -> BillingPeriod | None:
    """The org's billing period that starts in the month (the first, if a contract changed)."""
    return (
        BillingPeriod.objects.filter(org=org, start__year=year, start__month=month)
        .order_by("start", "pk")
        .first()
    )


def org_summary(
    *, org: Org, at: datetime | None = None, period: BillingPeriod | None = None
) -> Summary:
    """A period's usage and cost so far, reservation use, credits and forecast, as of its last
    rating (minutes behind; see ``billing.rating.triggers``): ``period``, else the one that
    contains ``at`` (default now). Reads stored results only: a handful of indexed queries,
    whatever the volume of events; the hourly netting is ``reservation_hours``'s."""
    if period is None:
        period = current_period(org=org, at=at or timezone.now())
    elif period.org_id != org.pk:
        raise ValueError("the period is another org's")
    if period is None:
        return Summary(org=org.slug, period=None, currency=org.currency, rated_as_of=None)
    charges = list(RatedCharge.objects.filter(org=org, period=period).select_related("product"))
    amounts: dict[int, Decimal] = defaultdict(Decimal)
    for charge in charges:
        if charge.product_id:
            amounts[charge.product_id] += charge.amount
    products = {
        p.key: p for p in Product.objects.filter(key__in=list(period.usage)).order_by("key")
    }
    costs = [
        ProductCost(p.key, p.name, p.unit, Decimal(period.usage[key]), amounts.get(p.pk, ZERO))
        for key, p in products.items()
        if Decimal(period.usage[key]) or amounts.get(p.pk)
    ]
    uses = []
    for row in (
        ReservationUsage.objects.filter(org=org, period=period)
        .select_related("reservation__product")
        .order_by("reservation__product__key", "reservation__start", "reservation_id")
    ):
        reservation = row.reservation
        utilization = (
            (row.covered * 100 / row.reserved).quantize(Decimal("0.01")) if row.reserved else ZERO
        )
        uses.append(
            ReservationUse(
                product=reservation.product.key,
                start=reservation.start,
                end=reservation.end,
                quantity=reservation.quantity,
                amendment=reservation.amendment_id,
                reserved=row.reserved,
                used=row.used,
                covered=row.covered,
                burst=row.burst,
                utilization=utilization,
                name=reservation.product.name,
            )
        )
    applied = drawn_for(period=period)
    credits = [
        CreditLeft(g.key, g.amount, g.balance, g.currency, g.expires, applied.get(g.pk, ZERO))
        for g in CreditGrant.objects.filter(org=org).order_by(
            F("expires").asc(nulls_last=True), "priority", "pk"
        )
        if g.balance > 0 or g.pk in applied
    ]
    return Summary(
        org=org.slug,
        period=period,
        currency=period.currency,
        rated_as_of=period.rated_as_of,
        products=costs,
        charges=charges,
        cost_so_far=period.subtotal,
        credits_applied=sum(applied.values(), ZERO),
        reservations=uses,
        credits=credits,
        forecast=period.forecast,
    )


@dataclass(frozen=True)
class ReservedHour:
    product: str
    hour: datetime
    reserved: Decimal  # billing units reserved in the hour, R(h)
    used: Decimal  # U(h), billing units


def reservation_hours(
    *, org: Org, period: BillingPeriod, product: str | None = None
) -> list[ReservedHour]:
    """The hourly netting of the period's reservations, rated so far: one row per product and
    hour, sorted by product then hour; stacked reservations of a product add up (R(h) = Σ
    R_i(h), and their shares of U(h) give U(h))."""
    reserved: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
    used: dict[tuple[str, datetime], Decimal] = {}
    rows = ReservationUsage.objects.filter(org=org, period=period).select_related(
        "reservation__product"
    )
    if product:
        rows = rows.filter(reservation__product__key=product)
    for row in rows:
        key = row.reservation.product.key
        for offset, r, u in row.hours:
            hour = period.start + timedelta(hours=int(offset))
            reserved[(key, hour)] += Decimal(r)
            # Each stacked reservation's row holds its share of U(h): they add up to U(h).
            used[(key, hour)] = used.get((key, hour), ZERO) + Decimal(u)
    return [
        ReservedHour(key, hour, reserved[(key, hour)], used[(key, hour)])
        for key, hour in sorted(reserved)
    ]


@dataclass(frozen=True)
class ContractTerms:
    """A contract with every term it holds, each knowing the amendment that added it (None:
    the contract's own), and its amendments in the order they were signed (SPEC §3)."""

    contract: Contract
    reservations: list[Reservation]
    prices: list[ContractPrice]
    commitments: list[SpendCommitment]
    amendments: list[Amendment]


def contracts_for(*, orgs: QuerySet[Org]) -> QuerySet[Contract]:
    return (
        Contract.objects.filter(org__in=orgs)
        .select_related("org", "issuer")
        .order_by("org__slug", "start")
    )


def contract_terms(*, orgs: QuerySet[Org], contract_id: int) -> ContractTerms | None:
    """One contract of ``orgs`` with its terms and amendment history; None when there is no
    such contract among them (the caller answers alike whether it exists or not)."""
    contract = contracts_for(orgs=orgs).filter(pk=contract_id).first()
    if contract is None:
        return None
    org = contract.org
    return ContractTerms(
        contract=contract,
        reservations=list(
            Reservation.objects.filter(org=org, contract=contract)
            .select_related("product", "amendment")
            .prefetch_related("ramps")
            .order_by("product__key", "start", "pk")
        ),
        prices=list(
            ContractPrice.objects.filter(org=org, contract=contract)
            .select_related("product", "amendment")
            .order_by("valid_from", "pk")
        ),
        commitments=list(SpendCommitment.objects.filter(org=org, contract=contract)),
        amendments=list(
            Amendment.objects.filter(org=org, contract=contract)
            .select_related("signed_by", "deal")
            .order_by("signed_at", "pk")
        ),
    )


def rate_cards_for(*, orgs: QuerySet[Org] | None) -> QuerySet[RateCard]:
    """Rate card versions with their prices: all of them (``orgs`` None: staff), else those
    of the families the contracts of ``orgs`` use — a customer sees its own list prices."""
    cards = RateCard.objects.all()
    if orgs is not None:
        families = Contract.objects.filter(org__in=orgs).values("rate_card_key")
        cards = cards.filter(key__in=families)
    return cards.prefetch_related(
        Prefetch(
            "prices", queryset=Price.objects.select_related("product").order_by("product__key")
        )
    )
