"""What makes a period due for rating, so "cost so far" is minutes behind.

Metering calls ``rollups_changed`` in the transaction that rewrites rollups: the periods that
contain those hours are stamped ``usage_changed_at`` (invoiced ones too, so the invoicing app
sees late usage), and a ``billing.rate_due`` run is asked for, debounced. Beat runs it every
``TESSERA_RATING_INTERVAL_SECONDS`` as well: it rates periods whose usage changed since their
last rating, never rated ones, and open ones last rated before the current hour (a
reservation's take-or-pay charge grows every hour even without usage): ``due.periods_due``.

A write to what ratings read besides usage (a catalog reload, an admin edit of a contract, a
rate card, a product, a meter or an issuer) calls ``inputs_changed``: once it commits, the
open and closing periods of the contracts that read it are stamped (``terms_changed``).
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from functools import partial

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone

from metering.models import Meter

from ..models import (
    Amendment,
    BillingPeriod,
    Contract,
    ContractPrice,
    CreditGrant,
    Issuer,
    Price,
    Product,
    RateCard,
    Reservation,
    ReservationRamp,
    SpendCommitment,
)
from ..tasks import rate_due
from .due import changed_stamp

RATE_DEBOUNCE_SECONDS = 10


def rollups_changed(org_hours: Iterable[tuple[int, datetime]]) -> None:
    """Hook for ``metering.rollups``: these (org id, hour) rollups were just recomputed."""
    by_org: dict[int, list[datetime]] = defaultdict(list)
    for org_id, hour in org_hours:
        by_org[org_id].append(hour)
    if not by_org:
        return
    now = timezone.now()
    for org_id, hours in sorted(by_org.items()):
        BillingPeriod.objects.filter(
            org_id=org_id, start__lte=max(hours), end__gt=min(hours)
        ).update(usage_changed_at=changed_stamp(now))
    schedule_rating()


def terms_changed(*, contracts: Q | None = None) -> int:
    """Hook for what changes a rating's inputs other than usage and amendments (a catalog
    reload of a contract's terms, a rate card's prices, a product or an issuer): the open and
    closing periods of the contracts matching ``contracts`` (None: every contract) are stamped
    ``usage_changed_at``, so the next ``billing.rate_due`` rates them again. Call it once the
    change has committed (``transaction.on_commit``): a rating that read before the change
    started before this stamp and is due again (a batch's reads, made before its periods'
    locks, included); one that started after it reads the change. Returns how many."""
    periods = BillingPeriod.objects.filter(
        status__in=(BillingPeriod.Status.OPEN, BillingPeriod.Status.CLOSING)
    )
    if contracts is not None:
        periods = periods.filter(contract__in=Contract.objects.filter(contracts))
    return periods.update(usage_changed_at=changed_stamp(timezone.now()))


# What ratings read besides usage: a change to any of these rows (a catalog reload, an admin
# edit) makes the open and closing periods of the contracts that read it due again.
RATING_INPUTS = (Meter, Product, Issuer, RateCard, Price, Contract, ContractPrice, Reservation,
                 ReservationRamp, SpendCommitment, Amendment, CreditGrant)  # fmt: skip


def inputs_changed(rows: Iterable[Model]) -> None:
    """Hook for a write to rating inputs (a catalog reload, an admin edit), inside its
    transaction: once it commits, ``terms_changed`` stamps the periods of the contracts that
    read ``rows``. Which contracts is decided now, so pass deleted rows before the delete, and
    a row both as it was and as it is when an edit may move it (a rate card's key)."""
    rows = list(rows)
    if any(isinstance(row, RATING_INPUTS) for row in rows):
        transaction.on_commit(partial(terms_changed, contracts=contracts_reading(rows)))


def contracts_reading(rows: Iterable[Model]) -> Q | None:
    """The contracts whose ratings read any of ``rows`` (as they are now; pass a row before
    and after a change that moves it), for ``terms_changed``. None: every contract (a meter
    or a product changes usage everywhere); an issuer: its contracts' rounding; a rate card
    or one of its prices: the contracts on that card's key; a contract or one of its terms:
    that contract; a credit grant: its contract, or its org's. Rows that are no rating input
    match none."""
    which = Q(pk__in=[])
    for row in rows:
        match row:
            case Meter() | Product():
                return None
            case Issuer():
                which |= Q(issuer_id=row.pk)
            case RateCard():
                which |= Q(rate_card_key=row.key)
            case Price():
                which |= Q(rate_card_key=row.rate_card.key)
            case Contract():
                which |= Q(pk=row.pk)
            case ContractPrice() | Reservation() | SpendCommitment() | Amendment():
                which |= Q(pk=row.contract_id)
            case ReservationRamp():
                which |= Q(pk=row.reservation.contract_id)
            case CreditGrant():
                # Rating draws credits (SPEC §6 step 8): the grant's contract, or an org-wide
                # grant's org's contracts.
                which |= Q(pk=row.contract_id) if row.contract_id else Q(org_id=row.org_id)
    return which


def schedule_rating() -> None:
    """Ask for ``billing.rate_due`` after this transaction commits, at most once per window."""
    if not getattr(settings, "TESSERA_RATE_ON_ROLLUP", True):
        return
    if cache.add("tessera:rating-scheduled", 1, timeout=RATE_DEBOUNCE_SECONDS):
        transaction.on_commit(rate_due.delay)
