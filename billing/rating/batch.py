"""What the periods of one rating batch share (``billing.rate_periods``), read once per batch.

A ``RatingBatch`` lives as long as its batch and is passed down to ``compute_period``; it is
never a module global, so a price or contract changed after a batch is read by the next one.
It holds:

- the rate card versions and their prices (with products and meters), the same for every
  period on a card;
- each period's contract-side inputs (contract with issuer, dated terms, reservations with
  ramps, spend commitments) and its usage (the on-demand totals and a reserved product's
  hours), read for all the batch's periods in a few grouped queries by ``prepare`` in
  ``engine``, rather than about a dozen queries per period.

The per-period reads are made before the period is locked, so they are used only while the
locked period's ``usage_changed_at`` is still what it was when they were read: whatever
changes a period's usage or terms stamps it (a rollup or an amendment under the period's row
lock, a catalog reload once it commits), and a stamped period is read afresh inside its own
transaction. ``started`` is taken before any read: it is the ``rated_at`` of the batch's
periods, so a change that lands during the batch leaves its period due again.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from ..models import (
    BillingPeriod,
    Contract,
    ContractPrice,
    Price,
    Product,
    RateCard,
    Reservation,
    SpendCommitment,
)
from .usage import hourly_usage, period_usages

# A usage range: (product pk, [start, end)).
Range = tuple[int, datetime, datetime]


@dataclass(frozen=True)
class Inputs:
    """A period's contract-side inputs, as ``compute_period`` reads them: the dated terms in
    (valid_from, pk) order, the reservations in (product, start, pk) order with their ramps."""

    contract: Contract
    terms: list[ContractPrice]
    reservations: list[Reservation]
    commitments: dict[str, Decimal]


def _overlaps_terms(first: date, last: date) -> Q:
    return Q(valid_from__lt=last) & (Q(valid_until__isnull=True) | Q(valid_until__gt=first))


def inputs_of(period: BillingPeriod) -> Inputs:
    """One period's inputs, read on their own (a period outside any batch)."""
    first, last = period.start.date(), period.end.date()
    contract = Contract.objects.select_related("issuer").get(pk=period.contract_id)
    terms = list(
        ContractPrice.objects.filter(org_id=period.org_id, contract=contract)
        .filter(_overlaps_terms(first, last))
        .order_by("valid_from", "pk")
    )
    reservations = list(
        Reservation.objects.filter(
            org_id=period.org_id, contract=contract, start__lt=last, end__gt=first
        )
        .prefetch_related("ramps")
        .order_by("product_id", "start", "pk")
    )
    commitments = {
        c.per: c.amount
        for c in SpendCommitment.objects.filter(org_id=period.org_id, contract=contract)
    }
    return Inputs(contract, terms, reservations, commitments)


def inputs_of_many(periods: Sequence[BillingPeriod]) -> dict[int, Inputs]:
    """The inputs of every period, by period pk, in four queries (and one for the ramps)
    whatever their number: the same rows, in the same order, as ``inputs_of`` each."""
    org_ids = {p.org_id for p in periods}
    contract_ids = {p.contract_id for p in periods}
    contracts = Contract.objects.select_related("issuer").filter(
        org_id__in=org_ids, pk__in=contract_ids
    )
    by_pk = {c.pk: c for c in contracts}
    # By (org, contract), as ``inputs_of`` filters them.
    terms: dict[tuple[int, int], list[ContractPrice]] = defaultdict(list)
    for term in ContractPrice.objects.filter(
        org_id__in=org_ids, contract_id__in=contract_ids
    ).order_by("valid_from", "pk"):
        terms[(term.org_id, term.contract_id)].append(term)
    reservations: dict[tuple[int, int], list[Reservation]] = defaultdict(list)
    for reservation in (
        Reservation.objects.filter(org_id__in=org_ids, contract_id__in=contract_ids)
        .prefetch_related("ramps")
        .order_by("product_id", "start", "pk")
    ):
        reservations[(reservation.org_id, reservation.contract_id)].append(reservation)
    commitments: dict[tuple[int, int], dict[str, Decimal]] = defaultdict(dict)
    for commitment in SpendCommitment.objects.filter(
        org_id__in=org_ids, contract_id__in=contract_ids
    ):
        commitments[(commitment.org_id, commitment.contract_id)][commitment.per] = commitment.amount
    found = {}
    for period in periods:
        contract = by_pk.get(period.contract_id)
        if contract is None:
            continue
        first, last = period.start.date(), period.end.date()
        key = (period.org_id, contract.pk)
        found[period.pk] = Inputs(
            contract,
            [
                t
                for t in terms[key]
                if t.valid_from < last and (t.valid_until is None or t.valid_until > first)
            ],
            [r for r in reservations[key] if r.start < last and r.end > first],
            dict(commitments[key]),
        )
    return found


class RatingBatch:
    """The reads a batch of ratings shares (see the module docstring). A batch of one period
    (``RatingBatch()`` with nothing prepared) reads everything as that period needs it."""

    def __init__(self) -> None:
        self.started = timezone.now()
        self._cards: dict[tuple[str, date], RateCard | None] = {}
        self._prices: dict[int, list[Price]] = {}
        self._products: dict[frozenset[int], list[Product]] = {}
        # Per period pk: the usage_changed_at its prepared reads go with, and those reads.
        self._stamps: dict[int, datetime | None] = {}
        self._inputs: dict[int, Inputs] = {}
        self._totals: dict[int, tuple[tuple[Range, ...], list[Decimal]]] = {}
        self._hourly: dict[tuple[int, Range], dict[datetime, Decimal]] = {}

    # What every period on a rate card shares.

    def rate_card(self, key: str, day: date) -> RateCard | None:
        """The version of rate card ``key`` in force on ``day``; None when there is none."""
        if (key, day) not in self._cards:
            self._cards[(key, day)] = (
                RateCard.objects.filter(key=key, effective_from__lte=day)
                .order_by("-effective_from")
                .first()
            )
        return self._cards[(key, day)]

    def prices(self, card: RateCard) -> list[Price]:
        """The card's prices with their products and meters, in the products' key order."""
        if card.pk not in self._prices:
            self._prices[card.pk] = list(
                Price.objects.filter(rate_card=card)
                .select_related("product__meter")
                .order_by("product__key")
            )
        return self._prices[card.pk]

    def products(self, ids: Iterable[int]) -> list[Product]:
        """These products with their meters, in key order."""
        wanted = frozenset(ids)
        if wanted not in self._products:
            self._products[wanted] = list(
                Product.objects.select_related("meter").filter(pk__in=wanted).order_by("key")
            )
        return self._products[wanted]

    # Each period's own reads, prepared for the batch (``engine.batch_prepare``).

    def hold(self, periods: Iterable[BillingPeriod]) -> None:
        """Record the stamps that the reads prepared for ``periods`` go with."""
        for period in periods:
            self._stamps[period.pk] = period.usage_changed_at

    def keep_inputs(self, found: dict[int, Inputs]) -> None:
        self._inputs.update(found)

    def keep_totals(self, period_pk: int, wanted: tuple[Range, ...], values: list[Decimal]) -> None:
        self._totals[period_pk] = (wanted, values)

    def keep_hourly(self, period_pk: int, key: Range, usage: dict[datetime, Decimal]) -> None:
        self._hourly[(period_pk, key)] = usage

    def _current(self, period: BillingPeriod) -> bool:
        """Whether the reads prepared for ``period`` still hold: it is the batch's, and its
        usage or terms have not been stamped as changed since they were read."""
        return period.pk in self._stamps and self._stamps[period.pk] == period.usage_changed_at

    def inputs(self, period: BillingPeriod) -> Inputs:
        if self._current(period) and period.pk in self._inputs:
            return self._inputs[period.pk]
        return inputs_of(period)

    def period_usages(
        self, period: BillingPeriod, wanted: Sequence[tuple[Product, datetime, datetime]]
    ) -> list[Decimal]:
        """``usage.period_usages`` of the period's org, as prepared when it still holds."""
        key = tuple((p.pk, low, high) for p, low, high in wanted)
        prepared = self._totals.get(period.pk)
        if prepared is not None and prepared[0] == key and self._current(period):
            return prepared[1]
        return period_usages(org_id=period.org_id, wanted=wanted)

    def hourly_usage(
        self, period: BillingPeriod, product: Product, start: datetime, end: datetime
    ) -> dict[datetime, Decimal]:
        """``usage.hourly_usage`` of the period's org, as prepared when it still holds."""
        prepared = self._hourly.get((period.pk, (product.pk, start, end)))
        if prepared is not None and self._current(period):
            return prepared
        return hourly_usage(org_id=period.org_id, product=product, start=start, end=end)
