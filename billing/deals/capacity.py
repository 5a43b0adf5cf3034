"""Capacity per pool and month (SPEC §3 "Capacity pool"): installed GPUs less reserved ones.

A product draws from the pool named by its filter's ``gpu_model`` and ``region`` dimensions.
Per calendar month: ``installed`` is the pool's smallest size in the month, ``reserved`` the
largest number of GPUs the contracts' reservations hold at once (ramps included), and
``available`` the smallest ``installed − reserved`` at any day of the month. A deal fits a
month when ``reserved + deal ≤ installed`` on every day of it; else it is short by the largest
excess. Approved deals that are not signed yet are shown as ``pipeline`` and not subtracted:
signing creates their reservations, in the same transaction.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from ..models import CapacityPool, Product, Reservation
from .economics import deal_term, line_schedule
from .models import Deal, DealLine
from .schedule import (
    FAR_FUTURE,
    Step,
    add_months,
    boundaries,
    level,
    months_between,
    peak,
    ramped,
)

ZERO = Decimal(0)
PoolKey = tuple[str, str]  # (gpu_model, region)


def pool_of(product: Product) -> PoolKey | None:
    gpu_model, region = product.filter.get("gpu_model"), product.filter.get("region")
    return (str(gpu_model), str(region)) if gpu_model and region else None


def pool_products(key: PoolKey) -> list[int]:
    gpu_model, region = key
    return list(
        Product.objects.filter(filter__gpu_model=gpu_model, filter__region=region).values_list(
            "pk", flat=True
        )
    )


def pool_keys() -> list[PoolKey]:
    """Every pool with installed GPUs or with reservations against it."""
    keys = set(CapacityPool.objects.values_list("gpu_model", "region"))
    reserved = Product.objects.filter(pk__in=Reservation.objects.values("product_id"))
    keys |= {k for k in map(pool_of, reserved) if k}
    return sorted(keys, key=lambda k: (k[1], k[0]))


def installed_steps(key: PoolKey) -> list[Step]:
    rows = list(CapacityPool.objects.filter(gpu_model=key[0], region=key[1]).order_by("valid_from"))
    ends = [r.valid_from for r in rows[1:]] + [FAR_FUTURE]
    return [Step(r.valid_from, e, Decimal(r.gpus)) for r, e in zip(rows, ends, strict=True)]


def reservation_steps(reservation: Reservation) -> list[Step]:
    ramps = [(r.starts, r.quantity) for r in reservation.ramps.all()]
    return ramped(reservation.start, reservation.end, reservation.quantity, ramps)


@dataclass(frozen=True)
class Holder:
    """A contract or a deal holding GPUs of the pool in a month (its peak in that month)."""

    kind: str  # "contract" | "deal"
    id: int
    label: str
    org: str  # the org's slug; "" when the caller may not see that org
    status: str
    quantity: Decimal
    deal_id: int | None = None  # the deal behind it: the deal itself, or a deal's contract


@dataclass(frozen=True)
class PoolMonth:
    month: date
    installed: Decimal
    reserved: Decimal
    available: Decimal
    pipeline: Decimal
    holders: list[Holder]
    deal: Decimal = ZERO
    short: Decimal = ZERO  # GPUs missing on the worst day, when the deal is added

    @property
    def fits(self) -> bool:
        return self.short <= 0


@dataclass
class PoolCapacity:
    gpu_model: str
    region: str
    months: list[PoolMonth] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.gpu_model} {self.region}"


@dataclass
class _Holdings:
    """Steps per holder; the contracts' are reserved, the deals' are pipeline."""

    contracts: dict[int, tuple[str, str, int, list[Step]]] = field(default_factory=dict)
    deals: dict[int, tuple[str, str, int, list[Step]]] = field(default_factory=dict)
    contract_deals: dict[int, int] = field(default_factory=dict)  # contract id → deal id

    def reserved(self) -> list[Step]:
        return [s for *_, steps in self.contracts.values() for s in steps]

    def pipeline(self) -> list[Step]:
        return [s for *_, steps in self.deals.values() for s in steps]


def _holdings(key: PoolKey, first: date, last: date, exclude: Deal | None) -> _Holdings:
    products = pool_products(key)
    holdings = _Holdings()
    reservations = (
        Reservation.objects.filter(product_id__in=products, start__lt=last, end__gt=first)
        .select_related("contract", "org")
        .prefetch_related("ramps")
        .order_by("contract_id", "start")
    )
    if exclude is not None and exclude.contract_id:
        reservations = reservations.exclude(contract_id=exclude.contract_id)
    if exclude is not None and exclude.amendment_id:
        # A signed amendment's reservations are the deal's own lines, counted as the deal.
        reservations = reservations.exclude(amendment_id=exclude.amendment_id)
    for r in reservations:
        entry = holdings.contracts.setdefault(
            r.contract_id, (r.contract.key, r.org.slug, r.org_id, [])
        )
        entry[3].extend(reservation_steps(r))
    holdings.contract_deals = dict(
        Deal.objects.filter(contract_id__in=list(holdings.contracts)).values_list(
            "contract_id", "pk"
        )
    )
    lines = DealLine.objects.filter(
        product_id__in=products, deal__status=Deal.Status.APPROVED
    ).select_related("deal__org")
    if exclude is not None:
        lines = lines.exclude(deal_id=exclude.pk)
    for line in lines:
        deal = line.deal
        entry = holdings.deals.setdefault(
            deal.pk, (f"deal {deal.pk}", deal.org.slug, deal.org_id, [])
        )
        entry[3].extend(line_schedule(line))
    return holdings


def pool_capacity(
    *,
    key: PoolKey,
    months: list[date],
    deal_steps: list[Step] | None = None,
    exclude: Deal | None = None,
    visible_org_ids: set[int] | None = None,
) -> PoolCapacity:
    """The pool month by month; with ``deal_steps``, the deal's need and shortfall too.
    Holders of orgs outside ``visible_org_ids`` (None: all visible) are shown without name."""
    first, last = months[0], add_months(months[-1], 1)
    installed = installed_steps(key)
    holdings = _holdings(key, first, last, exclude)
    reserved, pipeline, wanted = holdings.reserved(), holdings.pipeline(), deal_steps or []
    result = PoolCapacity(*key)
    for month in months:
        end = add_months(month, 1)
        days = boundaries([*installed, *reserved, *wanted], month, end)
        holders = [
            Holder(kind, pk, label, org, status, q, deal_of.get(pk))
            if _visible(org_id, visible_org_ids)
            else Holder(kind, 0, "another org", "", status, q)
            for kind, group, status, deal_of in (
                ("contract", holdings.contracts, "signed", holdings.contract_deals),
                ("deal", holdings.deals, Deal.Status.APPROVED, {pk: pk for pk in holdings.deals}),
            )
            for pk, (label, org, org_id, steps) in group.items()
            if (q := peak(steps, month, end))
        ]
        result.months.append(
            PoolMonth(
                month=month,
                installed=min(level(installed, d) for d in days),
                reserved=peak(reserved, month, end),
                available=min(level(installed, d) - level(reserved, d) for d in days),
                pipeline=peak(pipeline, month, end),
                holders=holders,
                deal=peak(wanted, month, end),
                short=_short(days, installed, reserved, wanted),
            )
        )
    return result


def _short(
    days: list[date], installed: list[Step], reserved: list[Step], wanted: list[Step]
) -> Decimal:
    """GPUs missing on the worst day the deal holds any: reserved + deal − installed."""
    excess = [
        level(reserved, d) + need - level(installed, d) for d in days if (need := level(wanted, d))
    ]
    return max([ZERO, *excess])


def _visible(org_id: int, visible: set[int] | None) -> bool:
    return visible is None or org_id in visible


@dataclass(frozen=True)
class Shortfall:
    pool: str
    month: date
    gpus: Decimal

    def __str__(self) -> str:
        return f"short by {self.gpus.normalize():f} GPUs in {self.month:%Y-%m} ({self.pool})"


@dataclass
class Fit:
    pools: list[PoolCapacity]
    unmapped: list[str]  # products without a pool (no gpu_model/region in their filter)

    @property
    def shortfalls(self) -> list[Shortfall]:
        return [
            Shortfall(p.name, m.month, m.short) for p in self.pools for m in p.months if m.short
        ]

    @property
    def fits(self) -> bool:
        return not self.shortfalls and not self.unmapped


def deal_fit(*, deal: Deal, lines: list[DealLine], visible_org_ids: set[int] | None = None) -> Fit:
    """Capacity fit per calendar month of the deal's term, per pool its lines draw from."""
    by_pool: dict[PoolKey, list[Step]] = defaultdict(list)
    unmapped = []
    for line in lines:
        key = pool_of(line.product)
        if key is None:
            unmapped.append(line.product.key)
        else:
            by_pool[key].extend(line_schedule(line))
    if not by_pool:
        return Fit([], unmapped)
    months = months_between(*deal_term(lines))
    pools = [
        pool_capacity(
            key=key,
            months=months,
            deal_steps=steps,
            exclude=deal,
            visible_org_ids=visible_org_ids,
        )
        for key, steps in sorted(by_pool.items())
    ]
    # Keep only the months in which the deal holds GPUs of that pool.
    for pool in pools:
        pool.months = [m for m in pool.months if m.deal]
    return Fit(pools, unmapped)


def capacity_overview(
    *, start: date, months: int = 24, visible_org_ids: set[int] | None = None
) -> list[PoolCapacity]:
    first = start.replace(day=1)
    month_list = [add_months(first, i) for i in range(months)]
    return [
        pool_capacity(key=key, months=month_list, visible_org_ids=visible_org_ids)
        for key in pool_keys()
    ]
