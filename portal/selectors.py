"""What the portal shows, read from rollups and rated results (never from raw events)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import QuerySet

from billing.models import BillingPeriod, Product
from billing.rating.usage import hourly_usage
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


def days_of(start: datetime, end: datetime) -> list[datetime]:
    days, day = [], start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        days.append(day)
        day += DAY
    return days


def daily_usage_by_product(
    *, org: Org, start: datetime, end: datetime
) -> dict[Product, dict[datetime, Decimal]]:
    """Billing units per product and UTC day: Σ U(h), the quantity rating bills."""
    result: dict[Product, dict[datetime, Decimal]] = {}
    for product in Product.objects.select_related("meter").order_by("key"):
        hours = hourly_usage(org_id=org.pk, product=product, start=start, end=end)
        if not hours:
            continue
        days: dict[datetime, Decimal] = defaultdict(Decimal)
        for hour, value in hours.items():
            days[hour.replace(hour=0)] += value
        result[product] = dict(days)
    return result


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
