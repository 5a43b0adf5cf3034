"""Alert reads; every read names the orgs it may return."""

from django.db.models import QuerySet

from tenancy.models import Org

from ..models import BillingPeriod
from .models import Alert, AlertFiring


def alerts_for(*, orgs: QuerySet[Org]) -> QuerySet[Alert]:
    return Alert.objects.filter(org__in=orgs).select_related("org", "product")


def firings_for(
    *, orgs: QuerySet[Org], period: BillingPeriod | None = None
) -> QuerySet[AlertFiring]:
    """Firings of ``orgs``, newest first; of one ``period`` when given."""
    firings = AlertFiring.objects.filter(org__in=orgs)
    if period is not None:
        firings = firings.filter(period=period)
    return firings.select_related("org", "alert", "period").order_by("-fired_at", "-pk")
