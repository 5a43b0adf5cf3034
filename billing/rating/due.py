"""Which periods need rating, read-only: the stale ones ``billing.rate_due`` rates, and the
age of the oldest usage change not rated yet (a ``/metrics`` gauge)."""

from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter

from django.db.models import DateTimeField, F, Min, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from ..models import BillingPeriod

Status = BillingPeriod.Status


def periods_due(*, now: datetime) -> list[int]:
    """Ids of the open or closing periods, begun by ``now``, whose charges are stale."""
    return [pk for pk, _ in periods_due_by_org(now=now)]


def periods_due_by_org(*, now: datetime) -> list[tuple[int, int]]:
    """(period id, org id) of ``periods_due``, in org order."""
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    stale = (
        Q(rated_at__isnull=True)
        | Q(usage_changed_at__gt=F("rated_at"))
        | Q(status=Status.OPEN, rated_as_of__lt=this_hour)
        | Q(status=Status.CLOSING, rated_as_of__lt=F("end"))
    )
    return list(
        BillingPeriod.objects.filter(status__in=(Status.OPEN, Status.CLOSING), start__lte=now)
        .filter(stale)
        .order_by("org_id", "start")
        .values_list("pk", "org_id")
    )


def changed_stamp(now: datetime) -> Greatest:
    """What ``usage_changed_at`` is set to when a period's rating inputs change at ``now``
    (``periods.update(usage_changed_at=changed_stamp(now))``): ``now``, or just after the
    row's ``rated_at`` when that is later. A stamping UPDATE that waited on a rating's row
    lock writes after that rating committed, and the rating (``rated_at``: its start, maybe
    after ``now``) did not see the change, which commits later: without the rule the stamp
    would be earlier than its ``rated_at`` and the period not due again. PostgreSQL (READ
    COMMITTED) evaluates this on the row as the rating left it; ``Coalesce``, because
    SQLite's ``max()`` is NULL when any argument is (PostgreSQL's GREATEST skips NULLs)."""
    at = Value(now, output_field=DateTimeField())
    # The least step after rated_at that is still later than it: timestamps are microseconds.
    after = F("rated_at") + Value(timedelta(microseconds=1))
    return Greatest(at, Coalesce(after, at))


def in_batches(due: list[tuple[int, int]], size: int) -> list[list[int]]:
    """The ids of ``due`` (period id, org id), in org order, cut into batches of at most
    ``size`` periods, each org's periods in one batch (alone in a larger one when it has
    more than ``size``)."""
    batches: list[list[int]] = []
    for _, group in groupby(due, key=itemgetter(1)):
        ids = [pk for pk, _ in group]
        if batches and len(batches[-1]) + len(ids) <= size:
            batches[-1].extend(ids)
        else:
            batches.append(ids)
    return batches


def rating_lag() -> tuple[str, str, float]:
    """Scrape-time gauge: how long the stalest changed period has waited for its rating."""
    oldest = BillingPeriod.objects.filter(
        Q(rated_at__isnull=True) | Q(usage_changed_at__gt=F("rated_at")),
        status__in=(Status.OPEN, Status.CLOSING),
        usage_changed_at__isnull=False,
    ).aggregate(oldest=Min("usage_changed_at"))["oldest"]
    lag = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    return ("tessera_rating_lag_seconds", "Age of the oldest usage change not yet rated.", lag)
