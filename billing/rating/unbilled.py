"""Unbilled usage (SPEC §2, §3 "Unbilled usage", §5): accepted usage that no invoice line
bills, with the reason, so that nothing accepted is ever silently dropped.

A rollup is billed when, as the rating engine would see it (``billing.rating.engine``):

1. a contract of its org covers its hour (``[start, end)``, whole UTC days) — else
   ``no_contract``;
2. its dimensions match the filter of at least one product of its meter — else
   ``no_matching_product`` (e.g. ``region: default``, ``gpu_model: h100`` in lower case, a
   missing or null dimension);
3. one of those products is priced for that contract in that hour: a price on the version of
   the contract's rate card in force at the start of the hour's billing period, a custom unit
   price on the contract, or a reservation of the product in force that day — else
   ``no_price``.

A meter that no product reads at all is a view of usage that other meters bill (e.g. cached
tokens, already part of the input count), not billable usage: it is not listed.

Usage that arrives after a contract's last period was invoiced is covered by (1) and billed on
a final adjustment invoice (SPEC §6 step 5), so it is not listed. Once the missing contract,
product or price is added, the usage is billed by the next rating and leaves this list.

The arithmetic runs in the database: one grouped query over the hourly rollups, per (org,
meter, dimension values, UTC day) — contract terms change only at midnight — streamed in org
order; no event is read. Contracts, prices and reservations of the orgs are loaded once.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max, Min, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from metering.models import HourlyRollup, Meter
from tenancy.models import Org

from ..models import Contract, ContractPrice, Price, Product, RateCard, Reservation
from .periods import anchor_on_or_before

NO_MATCHING_PRODUCT = "no_matching_product"
NO_CONTRACT = "no_contract"
NO_PRICE = "no_price"
REASONS = (NO_MATCHING_PRODUCT, NO_CONTRACT, NO_PRICE)
HOUR = timedelta(hours=1)
SUMMARY_CACHE_KEY = "tessera:unbilled-summary"
SUMMARY_TTL_SECONDS = 60


@dataclass(frozen=True)
class UnbilledUsage:
    """One (org, meter, dimension values, reason): ``quantity`` in the meter's unit (the sum
    of its hourly values), ``events`` accepted, over the hours ``[start, end)``."""

    org: str
    meter: str
    unit: str
    dimensions: dict[str, Any]
    reason: str
    quantity: Decimal
    events: int
    start: datetime
    end: datetime


class _Terms:
    """What decides whether a contract bills a product on a day, for a set of orgs."""

    def __init__(self, orgs: QuerySet[Org]) -> None:
        self.contracts: dict[int, list[Contract]] = defaultdict(list)
        for contract in Contract.objects.filter(org__in=orgs).order_by("org_id", "start"):
            self.contracts[contract.org_id].append(contract)
        self.custom = set(
            ContractPrice.objects.filter(
                org__in=orgs, product__isnull=False, unit_price__isnull=False
            ).values_list("contract_id", "product_id")
        )
        self.reserved: dict[tuple[int, int], list[tuple[date, date]]] = defaultdict(list)
        for contract_id, product_id, start, end in Reservation.objects.filter(
            org__in=orgs
        ).values_list("contract_id", "product_id", "start", "end"):
            self.reserved[(contract_id, product_id)].append((start, end))
        self.cards: dict[str, list[tuple[date, int]]] = defaultdict(list)
        for key, effective, pk in RateCard.objects.order_by("effective_from").values_list(
            "key", "effective_from", "pk"
        ):
            self.cards[key].append((effective, pk))
        self.prices: dict[int, set[int]] = defaultdict(set)
        for card_id, product_id in Price.objects.values_list("rate_card_id", "product_id"):
            self.prices[card_id].add(product_id)

    def contract_on(self, org_id: int, day: date) -> Contract | None:
        for contract in self.contracts.get(org_id, []):
            if contract.start <= day and (contract.end is None or day < contract.end):
                return contract
        return None

    def priced(self, contract: Contract, product_id: int, day: date) -> bool:
        if (contract.pk, product_id) in self.custom:
            return True
        for start, end in self.reserved.get((contract.pk, product_id), []):
            if start <= day < end:
                return True
        # The period containing ``day`` starts on the billing day before it (or the contract's
        # start); the rate card version in force then prices the whole period.
        period_start = max(contract.start, anchor_on_or_before(day, contract.billing_day))
        card = None
        for effective, pk in self.cards.get(contract.rate_card_key, []):
            if effective <= period_start:
                card = pk
        return card is not None and product_id in self.prices[card]


class _Products:
    """The products of each meter, and which of them a rollup's dimension values match."""

    def __init__(self) -> None:
        self.by_meter: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for pk, meter_id, filters in Product.objects.values_list("pk", "meter_id", "filter"):
            self.by_meter[meter_id].append((pk, filters or {}))
        self.matches: dict[tuple[int, str], list[int]] = {}

    def matching(self, meter_id: int, dims_key: str, dimensions: dict[str, Any]) -> list[int]:
        """``dims_key`` is the rollup's digest of ``dimensions`` (metering.rollups.dims_key)."""
        key = (meter_id, dims_key)
        if key not in self.matches:
            self.matches[key] = [
                pk
                for pk, filters in self.by_meter.get(meter_id, [])
                if all(dimensions.get(name) == value for name, value in filters.items())
            ]
        return self.matches[key]


def _groups(
    orgs: QuerySet[Org], meters: Iterable[int], start: datetime, end: datetime
) -> Iterator[dict[str, Any]]:
    """The rollups of ``meters`` in ``[start, end)`` summed per (org, meter, dimension values,
    UTC day)."""
    return (
        HourlyRollup.objects.filter(
            org__in=orgs, meter_id__in=list(meters), hour__gte=start, hour__lt=end
        )
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("org_id", "meter_id", "dims_key", "dimensions", "day")
        .annotate(
            quantity=Sum("value"), events=Sum("event_count"), first=Min("hour"), last=Max("hour")
        )
        .order_by("org_id", "meter_id", "dims_key", "day")
        .iterator(chunk_size=5000)
    )


def unbilled_usage(*, orgs: QuerySet[Org], start: datetime, end: datetime) -> list[UnbilledUsage]:
    """The unbilled usage of ``orgs`` in the hours of ``[start, end)``, one row per (org,
    meter, dimension values, reason), ordered by org slug, meter key, dimensions, reason."""
    terms, products = _Terms(orgs), _Products()
    totals: dict[tuple[int, int, str, str], list[Any]] = {}
    dimensions_of: dict[str, dict[str, Any]] = {}
    for group in _groups(orgs, products.by_meter, start, end):
        org_id, meter_id, day = group["org_id"], group["meter_id"], group["day"]
        contract = terms.contract_on(org_id, day)
        dimensions_of[group["dims_key"]] = group["dimensions"]
        matched = products.matching(meter_id, group["dims_key"], group["dimensions"])
        if contract is None:
            reason = NO_CONTRACT
        elif not matched:
            reason = NO_MATCHING_PRODUCT
        elif not any(terms.priced(contract, product, day) for product in matched):
            reason = NO_PRICE
        else:
            continue
        key = (org_id, meter_id, group["dims_key"], reason)
        row = totals.setdefault(key, [Decimal(0), 0, group["first"], group["last"]])
        row[0] += group["quantity"] or Decimal(0)
        row[1] += group["events"] or 0
        row[2], row[3] = min(row[2], group["first"]), max(row[3], group["last"])
    slugs = dict(Org.objects.filter(pk__in={k[0] for k in totals}).values_list("pk", "slug"))
    meters = Meter.objects.in_bulk({k[1] for k in totals})
    rows = [
        UnbilledUsage(
            org=slugs[org_id],
            meter=meters[meter_id].key,
            unit=meters[meter_id].unit,
            dimensions=dimensions_of[dims_key],
            reason=reason,
            quantity=quantity,
            events=events,
            start=first,
            end=last + HOUR,
        )
        for (org_id, meter_id, dims_key, reason), (quantity, events, first, last) in totals.items()
        if quantity  # nothing to bill: e.g. a zero cached-token count of an unknown model
    ]
    rows.sort(key=lambda r: (r.org, r.meter, json.dumps(r.dimensions, sort_keys=True), r.reason))
    return rows


def default_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """``[now − TESSERA_UNBILLED_WINDOW_DAYS, the end of the current hour)``, whole hours."""
    moment = (now or timezone.now()).astimezone(UTC)
    end = moment.replace(minute=0, second=0, microsecond=0) + HOUR
    return end - timedelta(days=settings.TESSERA_UNBILLED_WINDOW_DAYS), end


@dataclass(frozen=True)
class UnbilledSummary:
    """Per reason, over the default window: rows (org, meter, dimensions) and events."""

    rows: dict[str, int]
    events: dict[str, int]
    orgs: int

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def unbilled_summary(*, fresh: bool = False) -> UnbilledSummary:
    """Every org's unbilled usage over the default window, summed per reason: what the
    ``/metrics`` gauges and the finance console's alert show. Kept in the cache for
    ``SUMMARY_TTL_SECONDS`` so that scrapes and page views do not repeat the scan."""
    cached = None if fresh else cache.get(SUMMARY_CACHE_KEY)
    if isinstance(cached, UnbilledSummary):
        return cached
    start, end = default_window()
    rows, events = dict.fromkeys(REASONS, 0), dict.fromkeys(REASONS, 0)
    orgs = set()
    for row in unbilled_usage(orgs=Org.objects.all(), start=start, end=end):
        rows[row.reason] += 1
        events[row.reason] += row.events
        orgs.add(row.org)
    summary = UnbilledSummary(rows=rows, events=events, orgs=len(orgs))
    cache.set(SUMMARY_CACHE_KEY, summary, SUMMARY_TTL_SECONDS)
    return summary


def unbilled_events_gauge() -> GaugeMetricFamily:
    """Scrape-time gauge (SPEC §5): unbilled events per reason over the default window."""
    summary = unbilled_summary()
    family = GaugeMetricFamily(
        "tessera_unbilled_usage_events",
        "Accepted usage events that no invoice line bills, per reason "
        "(TESSERA_UNBILLED_WINDOW_DAYS back from now).",
        labels=["reason"],
    )
    for reason in REASONS:
        family.add_metric([reason], summary.events[reason])
    return family


def unbilled_rows_gauge() -> GaugeMetricFamily:
    """Scrape-time gauge: unbilled (org, meter, dimensions) rows per reason."""
    summary = unbilled_summary()
    family = GaugeMetricFamily(
        "tessera_unbilled_usage_rows",
        "Unbilled usage rows (org, meter, dimension values) per reason.",
        labels=["reason"],
    )
    for reason in REASONS:
        family.add_metric([reason], summary.rows[reason])
    return family
