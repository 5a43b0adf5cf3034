"""What the billing read APIs share: amounts at their currency's minor unit, the
``?period=YYYY-MM`` parameter (SPEC §5)."""

from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import (
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from tenancy.access import caller, is_staff_reader, visible_orgs
from tenancy.api_access import org_for_read
from tenancy.models import Org

from ..models import BillingPeriod
from ..money import minor_units, money_text
from ..selectors import (
    current_period,
    period_starting_in,
)


def amount_text(amount: Decimal, currency: str) -> str:
    """An amount with exactly the currency's minor-unit decimals (USD 2, JPY 0)."""
    return f"{amount:.{minor_units(currency)}f}"


def _month(raw: str) -> tuple[int, int]:
    year, _, month = raw.partition("-")
    if not (len(year) == 4 and year.isdigit() and len(month) == 2 and month.isdigit()):
        raise ValidationError({"period": ["Expected YYYY-MM."]})
    if not 1 <= int(month) <= 12:
        raise ValidationError({"period": ["Expected YYYY-MM."]})
    return int(year), int(month)


def period_param(org: Org, raw: str | None) -> BillingPeriod | None:
    """``?period=YYYY-MM`` (the org's period that starts in that month), else the current."""
    if not raw or raw == "current":
        return current_period(org=org, at=timezone.now())
    year, month = _month(raw)
    period = period_starting_in(org=org, year=year, month=month)
    if period is None:
        raise ValidationError({"period": [f"Org {org.slug!r} has no period starting in {raw}."]})
    return period


class MoneyField(serializers.Field):
    """An amount as a decimal string at its currency's minor unit (Babel): "1.297" KWD,
    "1.30" USD, "1235" JPY. The currency is the object's own, else the summary's."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        value = super().get_attribute(instance)
        root = getattr(self.root, "instance", None)
        currency = getattr(instance, "currency", None) or getattr(root, "currency", "USD")
        return (value, currency)

    def to_representation(self, value: Any) -> Any:
        amount, currency = value
        return None if amount is None else money_text(amount, currency)


extend_schema_field({"type": "string", "format": "decimal", "example": "1.297"})(MoneyField)


def contract_orgs(request: Request) -> QuerySet[Org]:
    """The orgs whose contracts the caller may read: staff see theirs (finance and operators
    every org), customers and org keys their own org (``?org=`` picks one)."""
    slug = request.query_params.get("org")
    user, api_key = caller(request)
    if is_staff_reader(user=user, api_key=api_key):
        orgs = visible_orgs(user=user)
        return orgs.filter(slug=slug) if slug else orgs
    return Org.objects.filter(pk=org_for_read(request, slug).pk)
