"""Credits drawdown (SPEC §6 step 7) as an append-only ledger.

A period draws from the grants that are in force during it (effective before it ends, expiring
after it starts, same currency), soonest expiry first, then lower priority number, then the
oldest grant; never more than the period's subtotal, never below a grant's zero balance.
Re-rating a period appends, per grant, the difference between the new and the current draw:
history is never rewritten.
"""

from decimal import Decimal

from django.db.models import F, Q, Sum

from ..lock_objects import lock_credit_grants
from ..models import BillingPeriod, CreditDraw, CreditGrant

ZERO = Decimal(0)


def drawn_for(*, period: BillingPeriod) -> dict[int, Decimal]:
    rows = (
        CreditDraw.objects.filter(org_id=period.org_id, period=period)
        .values("grant_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {row["grant_id"]: row["total"] for row in rows if row["total"]}


def credits_apply(*, period: BillingPeriod, subtotal: Decimal) -> Decimal:
    """Make the period's net draws match ``subtotal``; returns the credits applied.
    Call inside the rating transaction."""
    grants = lock_credit_grants(org_id=period.org_id)
    current = drawn_for(period=period)
    eligible = [
        g
        for g in grants
        if g.currency == period.currency
        and g.effective < period.end.date()
        and (g.expires is None or g.expires > period.start.date())
    ]
    eligible.sort(key=lambda g: (g.expires is None, g.expires, g.priority, g.pk))
    wanted: dict[int, Decimal] = {}
    remaining = max(subtotal, ZERO)
    for grant in eligible:
        available = grant.balance + current.get(grant.pk, ZERO)
        draw = min(available, remaining)
        if draw:
            wanted[grant.pk] = draw
            remaining -= draw
    by_pk = {g.pk: g for g in grants}
    for grant_pk in sorted(set(wanted) | set(current)):
        delta = wanted.get(grant_pk, ZERO) - current.get(grant_pk, ZERO)
        if not delta:
            continue
        grant = by_pk[grant_pk]
        grant.balance -= delta
        # The grant is locked (lock_credit_grants), so the balance is computed here in Decimal: SQL
        # arithmetic (F("balance") - delta) is binary floating point on SQLite, and a draw of a
        # whole balance left -2.8e-14, which the check constraint below rightly refused.
        # The check constraint refuses a negative balance even if this arithmetic were wrong.
        CreditGrant.objects.filter(pk=grant_pk).update(balance=grant.balance)
        CreditDraw.objects.create(
            org_id=period.org_id,
            grant=grant,
            period=period,
            amount=delta,
            balance_after=grant.balance,
        )
    return sum(wanted.values(), ZERO)


def credits_left(*, org_id: int, currency: str) -> list[CreditGrant]:
    return list(
        CreditGrant.objects.filter(org_id=org_id, currency=currency)
        .filter(Q(balance__gt=0))
        .order_by(F("expires").asc(nulls_last=True), "priority", "pk")
    )
