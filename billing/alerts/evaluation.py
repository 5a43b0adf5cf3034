"""What each alert kind watches, read from rated results (never from events).

Each reading is a ``Reading``: a value, the subject it is about (a reservation, a
commitment; empty when the alert watches one thing) and a sentence for people.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum

from ..models import (
    BillingPeriod,
    Contract,
    CreditGrant,
    RatedCharge,
    Reservation,
    ReservationUsage,
    SpendCommitment,
)
from ..rating.periods import cycle, midnight
from .models import Alert

ZERO = Decimal(0)
PERCENT = Decimal("0.01")
Kind = Alert.Kind


@dataclass(frozen=True)
class Reading:
    subject: str
    value: Decimal
    crossed: bool
    message: str


def _amount(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _pct(value: Decimal) -> str:
    return f"{value.normalize():f}%"


def readings(*, alert: Alert, period: BillingPeriod, now: datetime) -> list[Reading]:
    """The alert's current readings for ``period`` (rated as of its last rating)."""
    if alert.kind == Kind.COST_ABOVE:
        return _cost(alert, period)
    if alert.kind == Kind.COMMITMENT_BURN_ABOVE:
        return _burn(alert, period)
    if alert.kind == Kind.CREDITS_BELOW:
        return _credits(alert, period, now)
    return _utilization(alert, period)


def _cost(alert: Alert, period: BillingPeriod) -> list[Reading]:
    """Cost so far: the period's rated subtotal (excl. VAT, before credits), as the portal."""
    if period.currency != alert.currency:
        return []
    cost = period.subtotal
    return [
        Reading(
            "",
            cost,
            cost >= alert.threshold,
            f"Cost so far this period is {_amount(cost, period.currency)} (excl. VAT), at or "
            f"above {_amount(alert.threshold, alert.currency)}.",
        )
    ]


def _spent(charges: "Q", org_id: int) -> Decimal:
    """Σ rated amounts except the minimum true-up (which tops the spend up to the minimum)."""
    total = (
        RatedCharge.objects.filter(charges, org_id=org_id)
        .exclude(kind=RatedCharge.Kind.MINIMUM_TRUE_UP)
        .aggregate(t=Sum("amount"))["t"]
    )
    return total or ZERO


def _burn(alert: Alert, period: BillingPeriod) -> list[Reading]:
    """Spent ÷ committed, percent: per period against the period's (prorated) minimum, per
    term against the term's, with what every period of the contract was charged so far."""
    contract = Contract.objects.get(pk=period.contract_id)
    result = []
    for commitment in SpendCommitment.objects.filter(org_id=period.org_id, contract=contract):
        if commitment.per == SpendCommitment.Per.PERIOD:
            cycle_start, cycle_end = cycle(period.start.date(), contract.billing_day)
            share = Decimal((period.end - period.start).total_seconds()) / Decimal(
                (midnight(cycle_end) - midnight(cycle_start)).total_seconds()
            )
            committed = commitment.amount * share
            spent = _spent(Q(period=period), period.org_id)
            what = "this period's"
        else:
            committed = commitment.amount
            spent = _spent(Q(period__contract=contract), period.org_id)
            what = "the term's"
        if not committed:
            continue
        burn = (spent * 100 / committed).quantize(PERCENT)
        result.append(
            Reading(
                f"commitment-{commitment.per}",
                burn,
                burn >= alert.threshold,
                f"{_pct(burn)} of {what} spend commitment is used "
                f"({_amount(spent, period.currency)} of {_amount(committed, period.currency)}), "
                f"at or above {_pct(alert.threshold)}.",
            )
        )
    return result


def _credits(alert: Alert, period: BillingPeriod, now: datetime) -> list[Reading]:
    """The balance of the org's grants in the alert's currency that are in force now. An org
    that never had a grant in that currency has nothing to run out of: no reading."""
    today = now.date()
    grants = CreditGrant.objects.filter(org_id=period.org_id, currency=alert.currency)
    if not grants.exists():
        return []
    balance = (
        grants.filter(effective__lte=today)
        .filter(Q(expires__isnull=True) | Q(expires__gt=today))
        .aggregate(b=Sum("balance"))["b"]
        or ZERO
    )
    return [
        Reading(
            "",
            balance,
            balance < alert.threshold,
            f"Credits left: {_amount(balance, alert.currency)}, below "
            f"{_amount(alert.threshold, alert.currency)}.",
        )
    ]


def _utilization(alert: Alert, period: BillingPeriod) -> list[Reading]:
    """Covered ÷ reserved over each reservation's last ``window_hours`` rated hours (across
    earlier periods when this one has fewer); no reading until that many hours are rated."""
    reservations = Reservation.objects.filter(
        org_id=period.org_id,
        contract_id=period.contract_id,
        start__lt=period.end.date(),
        end__gt=period.start.date(),
    ).select_related("product")
    if alert.product_id:
        reservations = reservations.filter(product_id=alert.product_id)
    result = []
    for reservation in reservations:
        reserved = covered = ZERO
        hours = 0
        rows = ReservationUsage.objects.filter(
            org_id=period.org_id, reservation=reservation, period__start__lte=period.start
        ).order_by("-period__start")
        for row in rows:
            for _, r, u in reversed(row.hours):
                if hours == alert.window_hours:
                    break
                reserved += Decimal(r)
                covered += min(Decimal(u), Decimal(r))
                hours += 1
            if hours == alert.window_hours:
                break
        if hours < alert.window_hours or not reserved:
            continue
        utilization = (covered * 100 / reserved).quantize(PERCENT)
        result.append(
            Reading(
                f"reservation-{reservation.pk}",
                utilization,
                utilization < alert.threshold,
                f"{reservation.product.name}: {_pct(utilization)} of the reserved capacity used "
                f"over the last {alert.window_hours} hours, below {_pct(alert.threshold)}.",
            )
        )
    return result
