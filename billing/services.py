"""Billing writes. Reads are in ``selectors``; the arithmetic of rating in ``rating``."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from audit.services import audit_record
from core.errors import DomainError, ErrorCode, ErrorKind
from metering.models import QuarantinedWork
from metering.quarantine import attempt
from tenancy.countries import country_problem
from tenancy.models import Org

from .alerts.services import alerts_after_rating
from .lock_objects import lock_contract_periods, lock_period
from .models import (
    Amendment,
    BillingPeriod,
    Contract,
    ContractPrice,
    Product,
    RatedCharge,
    Reservation,
    ReservationRamp,
    ReservationUsage,
)
from .rating.batch import RatingBatch
from .rating.credits import credits_apply
from .rating.due import changed_stamp
from .rating.engine import Rating, batch_prepare, compute_period
from .rating.periods import periods_ensure

log = logging.getLogger(__name__)
Status = BillingPeriod.Status
RATEABLE = (Status.OPEN, Status.CLOSING)


def period_unit(period_id: int) -> str:
    """The quarantine unit of one period's rating."""
    return f"period:{period_id}"


def period_rate(
    *, period_id: int, as_of: datetime | None = None, batch: RatingBatch | None = None
) -> BillingPeriod:
    """Rate one period with the usage of the hours before ``as_of`` (default: now) and replace
    its charges, netting detail and credit draws in one transaction. Idempotent: rating again
    with the same rollups gives the same rows. An invoiced period is left alone (its late usage
    becomes adjustments, computed by ``compute_period`` without saving). ``batch``: the reads
    it shares with the other periods of ``periods_rate``; its ``started`` is the rating's."""
    started = batch.started if batch is not None else timezone.now()
    as_of = (as_of or started).astimezone(UTC)
    with transaction.atomic():
        period = lock_period(period_id=period_id)
        if period.status not in RATEABLE:
            return period
        rating = compute_period(period=period, as_of=as_of, batch=batch)
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
    alerts_after_rating(period_id=period.pk, org_id=period.org_id)
    return period


def periods_rate(*, period_ids: Sequence[int], as_of: datetime | None = None) -> dict[int, bool]:
    """Rate a batch of periods (``billing.rate_periods``), each as ``period_rate`` does, in its
    own transaction with its own locks, and each isolated: a failure rolls back that period
    alone, is quarantined (SPEC §8) and the batch goes on. What the periods share is read
    once for the batch (``RatingBatch``, ``batch_prepare``). ``as_of`` defaults to the start
    of the batch. Returns, per period id, whether it was rated (a period that no longer
    exists is absent)."""
    batch = RatingBatch()
    as_of = (as_of or batch.started).astimezone(UTC)
    periods = list(
        BillingPeriod.objects.select_related("org")
        .filter(pk__in=list(period_ids))
        .order_by("org_id", "start", "pk")
    )
    try:
        with transaction.atomic():  # a savepoint when called inside a transaction
            batch_prepare(batch=batch, periods=periods, as_of=as_of)
    except Exception:
        # Only an optimization: each period then reads what it needs in its own rating.
        log.exception("rating batch: shared reads failed; rating period by period")
        batch = RatingBatch()
    outcomes: dict[int, bool] = {}
    for period in periods:
        outcome = attempt(
            partial(period_rate, period_id=period.pk, as_of=as_of, batch=batch),
            kind=QuarantinedWork.Kind.RATING,
            org=period.org,
            unit=period_unit(period.pk),
            hour=period.start,
        )
        outcomes[period.pk] = outcome.ok
    return outcomes


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
            list_unit_price=line.list_unit_price,
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


class BillingDetailsError(DomainError):
    """Billing details refused; ``fields`` names each offending field (VAT id, country...)."""

    codes = {"invalid_billing_details": ErrorCode(ErrorKind.INVALID, "Invalid billing details.")}


@transaction.atomic
def org_billing_details_update(
    *,
    org: Org,
    name: str | None = None,
    billing_address: str | None = None,
    country: str | None = None,
    vat_id: str | None = None,
    billing_email: str | None = None,
    actor: str = "api",
    user: Any = None,
) -> Org:
    """Change what the org's next invoices print and how they are taxed (SPEC §3, §6 step 8);
    a ``None`` field is left as it is. Finalized invoices keep their snapshot.

    The VAT id is checked for format and check digits against the (new) country and stored
    compacted (``tenancy.vat_ids``). Raises ``BillingDetailsError`` naming each field;
    nothing is written then. Audited.
    """
    from tenancy.vat_ids import VatIdError, vat_id_clean

    errors: dict[str, str] = {}
    new_country = org.country if country is None else country.strip().upper()
    if country is not None and (problem := country_problem(new_country)):
        errors["country"] = problem
    new_vat_id = org.vat_id if vat_id is None else vat_id
    if "country" not in errors:
        try:
            new_vat_id = vat_id_clean(country=new_country, vat_id=new_vat_id)
        except VatIdError as exc:
            errors["vat_id"] = exc.message
    if name is not None and not name.strip():
        errors["name"] = "must not be empty"
    if billing_email:
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        try:
            validate_email(billing_email)
        except ValidationError:
            errors["billing_email"] = f"{billing_email!r} is not an email address"
    if errors:
        raise BillingDetailsError(
            "invalid_billing_details",
            "; ".join(f"{name}: {message}" for name, message in errors.items()),
            fields={name: [message] for name, message in errors.items()},
        )
    wanted = {
        "name": org.name if name is None else name.strip(),
        "billing_address": org.billing_address if billing_address is None else billing_address,
        "country": new_country,
        "vat_id": new_vat_id,
        "billing_email": org.billing_email if billing_email is None else billing_email.strip(),
    }
    changed = {field: value for field, value in wanted.items() if getattr(org, field) != value}
    if changed:
        for field, value in changed.items():
            setattr(org, field, value)
        org.save(update_fields=list(changed))
        audit_record(
            action="org.billing_details",
            object_type="org",
            object_key=org.slug,
            changes=changed,
            user=user,
            actor=actor,
            org=org,
        )
    return org


class AmendmentError(Exception):
    """An amendment that would change a billed period or reach outside its contract."""


@dataclass(frozen=True)
class ReservationTerm:
    """A reservation an amendment adds: ``quantity`` units from ``start`` to ``end``
    (exclusive), changed at each ``ramp`` date."""

    product: Product
    quantity: Decimal
    unit_price: Decimal
    start: date
    end: date
    burst_unit_price: Decimal | None = None
    ramp: list[tuple[date, Decimal]] = field(default_factory=list)


@dataclass(frozen=True)
class PriceTerm:
    """A discount (``unit_price`` None) or custom price an amendment adds, from a date."""

    product: Product | None
    valid_from: date
    discount_percent: Decimal = Decimal(0)
    unit_price: Decimal | None = None
    valid_until: date | None = None


def billed_through(*, contract: Contract) -> date | None:
    """The end of the contract's last invoiced period: the past an amendment cannot change."""
    end = BillingPeriod.objects.filter(
        org_id=contract.org_id, contract=contract, status=Status.INVOICED
    ).aggregate(end=Max("end"))["end"]
    return end.date() if end else None


@transaction.atomic
def contract_amend(
    *,
    contract: Contract,
    reservations: list[ReservationTerm],
    prices: list[PriceTerm],
    summary: str,
    signed_by: Any = None,
) -> Amendment:
    """Append dated terms to a running contract (SPEC §3 "Amendments") and record them as one
    amendment: who signed it, when, and what it adds. Nothing the contract held before is
    changed; a term overlapping an earlier one of its kind supersedes it from its own date.

    The periods it touches are marked for rating again (``usage_changed_at``: the next
    ``billing.rate_due`` rates them; callers may ask for one at once with
    ``rating.triggers.schedule_rating``). Raises ``AmendmentError`` when a term
    starts before the end of the last invoiced period, or reaches outside the contract."""
    starts = [r.start for r in reservations] + [p.valid_from for p in prices]
    if not starts:
        raise AmendmentError("An amendment adds at least one term.")
    effective = min(starts)
    periods = lock_contract_periods(contract=contract, since=effective)
    invoiced = [p.end.date() for p in periods if p.status == Status.INVOICED]
    if invoiced:
        through = max(invoiced)
        raise AmendmentError(
            f"{contract.key} is invoiced through {through - timedelta(days=1)}: "
            f"an amendment starts on or after {through}, not {effective}."
        )
    last = contract.end or date.max
    for r in reservations:
        if not contract.start <= r.start < r.end <= last:
            raise AmendmentError(
                f"{r.product.name} from {r.start} to {r.end} is outside {contract.key}."
            )
    for p in prices:
        until = p.valid_until or last
        if not contract.start <= p.valid_from < until <= last:
            raise AmendmentError(f"a term from {p.valid_from} is outside {contract.key}.")
    amendment = Amendment.objects.create(
        org_id=contract.org_id,
        contract=contract,
        effective=effective,
        signed_at=timezone.now(),
        signed_by=signed_by,
        summary=summary,
    )
    for r in reservations:
        reservation = Reservation.objects.create(
            org_id=contract.org_id,
            contract=contract,
            amendment=amendment,
            product=r.product,
            quantity=r.quantity,
            unit_price=r.unit_price,
            burst_unit_price=r.burst_unit_price,
            start=r.start,
            end=r.end,
        )
        ReservationRamp.objects.bulk_create(
            ReservationRamp(org_id=contract.org_id, reservation=reservation, starts=d, quantity=q)
            for d, q in r.ramp
        )
    ContractPrice.objects.bulk_create(
        ContractPrice(
            org_id=contract.org_id,
            contract=contract,
            amendment=amendment,
            product=p.product,
            discount_percent=p.discount_percent,
            unit_price=p.unit_price,
            valid_from=p.valid_from,
            valid_until=p.valid_until,
        )
        for p in prices
    )
    BillingPeriod.objects.filter(pk__in=[p.pk for p in periods if p.status in RATEABLE]).update(
        usage_changed_at=changed_stamp(timezone.now())
    )
    audit_record(
        action="contract.amended",
        object_type="contract",
        object_key=contract.key,
        changes={"amendment": amendment.pk, "effective": effective, "summary": summary},
        user=signed_by,
        org=contract.org,
    )
    return amendment
