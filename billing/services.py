"""Billing writes. Reads are in ``selectors``; the arithmetic of rating in ``rating``."""

from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tenancy.models import Org

from .lock_objects import lock_period
from .models import BillingPeriod, Contract, RatedCharge, ReservationUsage
from .rating.credits import credits_apply
from .rating.engine import Rating, compute_period
from .rating.periods import periods_ensure

Status = BillingPeriod.Status
RATEABLE = (Status.OPEN, Status.CLOSING)


def period_rate(*, period_id: int, as_of: datetime | None = None) -> BillingPeriod:
    """Rate one period with the usage of the hours before ``as_of`` (default: now) and replace
    its charges, netting detail and credit draws in one transaction. Idempotent: rating again
    with the same rollups gives the same rows. An invoiced period is left alone (its late usage
    becomes adjustments, computed by ``compute_period`` without saving)."""
    started = timezone.now()
    as_of = (as_of or started).astimezone(UTC)
    with transaction.atomic():
        period = lock_period(period_id=period_id)
        if period.status not in RATEABLE:
            return period
        rating = compute_period(period=period, as_of=as_of)
        _replace(period, rating)
        credits_apply(period=period, subtotal=rating.subtotal)
        period.rated_at = started
        period.rated_as_of = as_of
        period.subtotal = rating.subtotal
        period.forecast = rating.forecast
        period.usage = rating.usage
        if rating.complete and period.status == Status.OPEN:
            period.status = Status.CLOSING
        period.save(
            update_fields=["rated_at", "rated_as_of", "subtotal", "forecast", "usage", "status"]
        )
    return period


def _replace(period: BillingPeriod, rating: Rating) -> None:
    RatedCharge.objects.filter(org_id=period.org_id, period=period).delete()
    RatedCharge.objects.bulk_create(
        RatedCharge(
            org_id=period.org_id,
            period=period,
            product=line.product,
            kind=line.kind,
            line=line.line,
            description=line.description[:200],
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount=line.amount,
            currency=rating.currency,
        )
        for line in rating.lines
    )
    ReservationUsage.objects.filter(org_id=period.org_id, period=period).delete()
    ReservationUsage.objects.bulk_create(
        ReservationUsage(
            org_id=period.org_id,
            period=period,
            reservation=n.reservation,
            reserved=n.reserved,
            used=n.used,
            covered=n.covered,
            burst=n.burst,
            hours=n.hours,
        )
        for n in rating.netting
    )


def contracts_in_force(*, at: datetime) -> Q:
    """Contracts that have begun by ``at`` and have not ended before it."""
    day = at.astimezone(UTC).date()
    return Q(start__lte=day) & (Q(end__isnull=True) | Q(end__gt=day))


def org_rate(*, org: Org, as_of: datetime | None = None) -> list[BillingPeriod]:
    """Create the org's missing periods up to ``as_of`` and rate each open or closing one
    that has begun. What ``manage.py rate`` runs per org."""
    as_of = (as_of or timezone.now()).astimezone(UTC)
    for contract in Contract.objects.filter(org=org, start__lte=as_of.date()):
        periods_ensure(contract=contract, through=as_of)
    ids = BillingPeriod.objects.filter(org=org, status__in=RATEABLE, start__lt=as_of).values_list(
        "pk", flat=True
    )
    return [period_rate(period_id=pk, as_of=as_of) for pk in sorted(ids)]


def periods_ensure_all(*, now: datetime) -> int:
    """Give every contract in force a period that contains ``now``."""
    created = 0
    current = BillingPeriod.objects.filter(start__lte=now, end__gt=now).values("contract_id")
    for contract in Contract.objects.filter(contracts_in_force(at=now)).exclude(pk__in=current):
        created += periods_ensure(contract=contract, through=now)
    return created
