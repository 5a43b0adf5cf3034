"""Row locks of the billing app's own models. The only place ``select_for_update`` appears
for them (Saleor ``checkout/lock_objects.py``): every helper names what it locks, and a helper
that locks several rows locks them in one statement in pk order, so two transactions that
need overlapping rows wait for each other and never deadlock.

Lock order across models, when a transaction takes several: periods, then invoices, then
document counters (``billing.invoicing.lock_objects``), then credit grants.
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime, time

from .models import BillingPeriod, Contract, CreditGrant


def lock_period(*, period_id: int) -> BillingPeriod:
    """Lock one period's row (rating, drafting and closing of a period run one at a time).
    Raises ``BillingPeriod.DoesNotExist``."""
    return BillingPeriod.objects.select_for_update().get(pk=period_id)


def lock_periods(*, period_ids: Iterable[int]) -> dict[int, BillingPeriod]:
    """Lock the periods in one statement, in pk order. Returns them by pk; a period that no
    longer exists is absent."""
    query = BillingPeriod.objects.select_for_update().filter(pk__in=list(period_ids))
    return {period.pk: period for period in query.order_by("pk")}


def lock_contract_periods(*, contract: Contract, since: date) -> list[BillingPeriod]:
    """Lock the contract's periods that end after ``since`` (00:00 UTC), in pk order: an
    amendment from ``since`` and the drafting of an invoice for those days (which locks its
    period) run one after the other."""
    query = BillingPeriod.objects.select_for_update().filter(
        org_id=contract.org_id,
        contract=contract,
        end__gt=datetime.combine(since, time(0), tzinfo=UTC),
    )
    return list(query.order_by("pk"))


def lock_credit_grants(*, org_id: int) -> list[CreditGrant]:
    """Lock the org's grants, in pk order (so concurrent ratings cannot deadlock)."""
    return list(CreditGrant.objects.select_for_update().filter(org_id=org_id).order_by("pk"))


def lock_credit_grant(*, org_id: int, key: str) -> CreditGrant | None:
    """Lock the org's grant named ``key``, or None if it has none."""
    return CreditGrant.objects.select_for_update().filter(org_id=org_id, key=key).first()
