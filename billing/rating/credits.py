"""Credits drawdown (SPEC §6 step 7) as an append-only ledger.

A period draws from the grants that are in force during it (effective before it ends, expiring
after it starts, same currency), soonest expiry first, then lower priority number, then the
oldest grant; never more than the period's subtotal, never below a grant's zero balance.
Re-rating a period appends, per grant, the difference between the new and the current draw:
history is never rewritten.
"""

from decimal import Decimal
from typing import Any

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
    # The org's balance (remainders of negative periods, SPEC §3) is drawn first.
    eligible.sort(key=lambda g: (g.source != "balance", g.expires is None, g.expires, g.priority,
                                 g.pk))  # fmt: skip
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


def credits_give_back(*, period: BillingPeriod, invoice: Any) -> Decimal:
    """Give back what ``period`` drew from each grant (a voided invoice, SPEC §3): one
    negative ``CreditDraw`` per grant with a net draw, so the ledger still adds up; and take
    back the balance the voided ``invoice`` carried to the org, if it did (a draw of the whole
    balance grant against the period). Returns the credits given back. Raises
    ``InvoicingError`` (``balance_used``) when a later invoice already used that balance.
    Call inside the voiding transaction, with the period locked."""
    from ..invoicing.errors import InvoicingError

    grants = lock_credit_grants(org_id=period.org_id)
    by_pk = {g.pk: g for g in grants}
    given = ZERO
    for grant_pk, drawn in sorted(drawn_for(period=period).items()):
        if drawn <= 0:
            continue
        grant = by_pk[grant_pk]
        grant.balance += drawn
        CreditGrant.objects.filter(pk=grant_pk).update(balance=grant.balance)
        CreditDraw.objects.create(org_id=period.org_id, grant=grant, period=period,
                                  amount=-drawn, balance_after=grant.balance)  # fmt: skip
        given += drawn
    for grant in grants:
        if grant.source != "balance" or grant.from_invoice_id != invoice.pk:
            continue
        if grant.balance != grant.amount:
            raise InvoicingError(
                "balance_used",
                f"The {grant.amount} balance that {invoice.number} carried is already partly "
                "used by a later invoice: issue a credit note instead of voiding.",
            )
        grant.balance = ZERO
        CreditGrant.objects.filter(pk=grant.pk).update(balance=ZERO)
        CreditDraw.objects.create(org_id=period.org_id, grant=grant, period=period,
                                  amount=grant.amount, balance_after=ZERO)  # fmt: skip
    return given


def balance_credit_create(*, invoice: Any) -> CreditGrant | None:
    """The org's balance credit for the remainder a finalized ``invoice`` carried (SPEC §3):
    a grant of source ``balance`` (never expires, drawn first), effective from the invoice's
    issue date. None when it carried nothing."""
    if invoice.balance_carried <= 0:
        return None
    return CreditGrant.objects.create(
        org_id=invoice.org_id,
        key=f"balance-{invoice.number}".lower()[:64],
        amount=invoice.balance_carried,
        balance=invoice.balance_carried,
        currency=invoice.currency,
        effective=invoice.issue_date,
        expires=None,
        priority=0,
        source="balance",
        from_invoice=invoice,
    )


def credits_left(*, org_id: int, currency: str) -> list[CreditGrant]:
    return list(
        CreditGrant.objects.filter(org_id=org_id, currency=currency)
        .filter(Q(balance__gt=0))
        .order_by(F("expires").asc(nulls_last=True), "priority", "pk")
    )
