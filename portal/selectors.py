"""What the portal shows, read from rollups and rated results (never from raw events)."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import F, QuerySet

from billing.invoicing.models import Invoice
from billing.models import (
    BillingPeriod,
    Contract,
    ContractPrice,
    CreditGrant,
    Price,
    Product,
    Reservation,
    ReservationUsage,
    SpendCommitment,
)
from billing.rating.engine import RatingError, rate_card_for
from billing.rating.periods import midnight
from billing.rating.pricing import EffectivePrice, effective_price
from billing.usage import ProductWindow, product_usage
from metering.models import Meter
from metering.selectors import usage_series
from tenancy.models import Membership, Org

DAY = timedelta(days=1)


def member_orgs(*, user_id: int) -> QuerySet[Org]:
    return Org.objects.filter(memberships__user_id=user_id).order_by("slug")


def membership_role(*, org: Org, user_id: int) -> str | None:
    return (
        Membership.objects.filter(org=org, user_id=user_id).values_list("role", flat=True).first()
    )


def org_periods(*, org: Org) -> QuerySet[BillingPeriod]:
    return BillingPeriod.objects.filter(org=org).order_by("-start")


def period_invoice(*, org: Org, period: BillingPeriod) -> Invoice | None:
    """The period's issued invoice (not a draft, not void), if any."""
    return (
        Invoice.objects.filter(org=org, period=period)
        .exclude(status__in=(Invoice.Status.DRAFT, Invoice.Status.VOID))
        .order_by("-pk")
        .first()
    )


def days_of(start: datetime, end: datetime) -> list[datetime]:
    days, day = [], start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        days.append(day)
        day += DAY
    return days


def daily_usage_and_cost(
    *, org: Org, start: datetime, end: datetime, products: list[Product], currency: str
) -> list[ProductWindow]:
    """Per product and UTC day: the quantity billed (billing units) and its rated cost."""
    return product_usage(
        org=org, start=start, end=end, window="day", products=products, currency=currency
    )


def dimension_choices(products: list[Product]) -> dict[str, list[str]]:
    """The dimension values the catalog's products are defined by, for the portal filters."""
    choices: dict[str, set[str]] = defaultdict(set)
    for product in products:
        for name, value in product.filter.items():
            choices[name].add(str(value))
    return {name: sorted(values) for name, values in sorted(choices.items())}


@dataclass(frozen=True)
class ReservationStack:
    """One reserved product's hours: each reservation's R_i(h) in ``bands`` (named as a
    person reads them, in the order they stack), and U(h)."""

    product: str
    hours: list[datetime]
    bands: dict[str, list[Decimal]]
    used: list[Decimal]

    @property
    def totals(self) -> list[Decimal]:
        """R(h) = Σ R_i(h)."""
        return [sum(column, Decimal(0)) for column in zip(*self.bands.values(), strict=True)]


def reservation_stacks(*, org: Org, period: BillingPeriod) -> list[ReservationStack]:
    """Per reserved product, its reservations' hourly netting in the period, rated so far:
    "8 reserved from 2026-11-01", "+4 reserved from 2026-11-02 (amendment)"."""
    rows = (
        ReservationUsage.objects.filter(org=org, period=period)
        .select_related("reservation__product")
        .order_by("reservation__product__key", "reservation__start", "reservation_id")
    )
    grouped: dict[str, list[ReservationUsage]] = defaultdict(list)
    for row in rows:
        grouped[row.reservation.product.key].append(row)
    stacks = []
    for product, members in grouped.items():
        offsets = sorted({int(h[0]) for row in members for h in row.hours})
        used: dict[int, Decimal] = defaultdict(Decimal)
        bands: dict[str, list[Decimal]] = {}
        for index, row in enumerate(members):
            reservation = row.reservation
            name = (
                f"{'+' if index else ''}{reservation.quantity.normalize():f} reserved from "
                f"{reservation.start}" + (" (amendment)" if reservation.amendment_id else "")
            )
            held = {int(h[0]): Decimal(h[1]) for h in row.hours}
            for h in row.hours:
                used[int(h[0])] += Decimal(h[2])  # each row holds its share of U(h)
            bands[name] = [held.get(offset, Decimal(0)) for offset in offsets]
        stacks.append(
            ReservationStack(
                product=product,
                hours=[period.start + timedelta(hours=offset) for offset in offsets],
                bands=bands,
                used=[used[offset] for offset in offsets],
            )
        )
    return stacks


@dataclass(frozen=True)
class TokenRow:
    model: str
    values: dict[str, Decimal]  # meter key → tokens


def token_usage_by_model(
    *, org: Org, start: datetime, end: datetime
) -> tuple[list[Meter], list[TokenRow]]:
    """Every token meter (llm.tokens grouped by model) over the period, per model."""
    meters = [
        m
        for m in Meter.objects.filter(event_type="llm.tokens").order_by("key")
        if "model" in m.group_by
    ]
    table: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for meter in meters:
        for point in usage_series(
            org=org, meter=meter, start=start, end=end, window="month", group_by=["model"]
        ):
            model = str(point.dimensions.get("model"))
            table[model][meter.key] = table[model].get(meter.key, Decimal(0)) + point.value
    return meters, [TokenRow(model, values) for model, values in sorted(table.items())]


@dataclass(frozen=True)
class PriceRow:
    product: Product
    list_price: Price | None
    override: ContractPrice | None  # the product's own custom price or discount
    discount_percent: Decimal  # what applies: the product's, else the contract-wide one
    effective: EffectivePrice | None  # what the org pays on demand


@dataclass(frozen=True)
class PriceList:
    contract: Contract
    rate_card: str  # "key @ effective_from", or why there is none
    currency: str
    in_force: bool
    rows: list[PriceRow] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    commitments: list[SpendCommitment] = field(default_factory=list)
    credits: list[CreditGrant] = field(default_factory=list)
    overall_discount: Decimal = Decimal(0)


def price_lists(*, org: Org, at: datetime) -> list[PriceList]:
    """The org's contracts (the one in force first), each with what it pays per product on
    demand — list price, its discount or custom price, the result — and its reservations,
    spend commitments and credits, as the rating engine applies them (SPEC §6 step 3)."""
    contracts = list(Contract.objects.filter(org=org).order_by("-start"))
    day = at.date()
    contracts.sort(key=lambda c: not (c.start <= day and (c.end is None or day < c.end)))
    result = []
    for contract in contracts:
        in_force = contract.start <= day and (contract.end is None or day < contract.end)
        moment = max(midnight(contract.start), min(at, midnight(contract.end or day)))
        try:
            card = rate_card_for(contract, moment)
        except RatingError as exc:
            result.append(PriceList(contract, str(exc), contract.currency, in_force))
            continue
        prices = {p.product_id: p for p in Price.objects.filter(rate_card=card)}
        terms = {t.product_id: t for t in ContractPrice.objects.filter(org=org, contract=contract)}
        overall = terms.get(None)
        overall_discount = overall.discount_percent if overall else Decimal(0)
        ids = set(prices) | {k for k in terms if k}
        rows = []
        for product in Product.objects.filter(pk__in=ids).select_related("meter").order_by("key"):
            own = terms.get(product.pk)
            discount = own.discount_percent if own else overall_discount
            rows.append(
                PriceRow(
                    product=product,
                    list_price=prices.get(product.pk),
                    override=own,
                    discount_percent=Decimal(0) if own and own.unit_price is not None else discount,
                    effective=effective_price(
                        prices.get(product.pk),
                        custom_unit_price=own.unit_price if own else None,
                        discount_percent=discount,
                    ),
                )
            )
        result.append(
            PriceList(
                contract=contract,
                rate_card=f"{card.key} @ {card.effective_from}",
                currency=contract.currency,
                in_force=in_force,
                rows=rows,
                reservations=list(
                    Reservation.objects.filter(org=org, contract=contract)
                    .select_related("product")
                    .prefetch_related("ramps")
                ),
                commitments=list(SpendCommitment.objects.filter(org=org, contract=contract)),
                credits=list(
                    CreditGrant.objects.filter(org=org, contract=contract).order_by(
                        F("expires").asc(nulls_last=True), "priority", "pk"
                    )
                ),
                overall_discount=overall_discount,
            )
        )
    return result
