"""The ``usage_changed_at`` stamp that makes a period due again (``rating.due.changed_stamp``):
never earlier than the rating it follows, even when the stamping UPDATE waited on that
rating's row lock."""

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from billing.lock_objects import lock_period
from billing.models import BillingPeriod, Contract
from billing.rating.due import periods_due
from billing.rating.periods import periods_ensure
from billing.rating.triggers import rollups_changed, terms_changed
from billing.services import org_rate
from tenancy.models import Org

from ..support.waiting import wait_until
from .conftest import START, contract, the_period

AS_OF = datetime(2026, 10, 5, tzinfo=UTC)  # after the two-day period: rated through its end

STAMPS: dict[str, Callable[[int], Any]] = {
    "rollups_changed": lambda org_id: rollups_changed([(org_id, START)]),
    "terms_changed": lambda org_id: terms_changed(contracts=Q(org_id=org_id)),
}


@pytest.fixture
def closing(catalog: Any) -> BillingPeriod:
    """acme's two-day period, rated through its end (closing) and not due."""
    catalog(contract())
    org_rate(org=Org.objects.get(slug="acme"), as_of=AS_OF)
    period = the_period()
    assert period.status == BillingPeriod.Status.CLOSING
    assert periods_due(now=AS_OF) == []
    return period


@pytest.mark.parametrize("stamp", list(STAMPS))
def test_a_stamp_is_later_than_a_rating_that_started_after_its_clock(closing, stamp):
    # a rating that started after the stamp read its clock, and committed first
    later = timezone.now() + timedelta(minutes=5)
    BillingPeriod.objects.filter(pk=closing.pk).update(rated_at=later)

    STAMPS[stamp](closing.org_id)

    closing.refresh_from_db()
    assert closing.usage_changed_at == later + timedelta(microseconds=1)
    assert periods_due(now=AS_OF) == [closing.pk]


@pytest.mark.parametrize("stamp", list(STAMPS))
def test_a_never_rated_period_is_stamped_with_the_clock(catalog, stamp):
    """rated_at NULL: the stamp is the clock, not NULL (SQLite's max() of a NULL is NULL)."""
    catalog(contract())
    periods_ensure(contract=Contract.objects.get(key="acme-c"), through=AS_OF)
    before = timezone.now()

    STAMPS[stamp](Org.objects.get(slug="acme").pk)

    period = the_period()
    assert period.rated_at is None
    assert period.usage_changed_at is not None
    assert before <= period.usage_changed_at <= timezone.now()


def _blocked_on_a_lock() -> int:
    """Sessions of this test database waiting for a lock (read outside any transaction, so
    each read is a fresh snapshot of pg_stat_activity)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stamp", list(STAMPS))
def test_a_stamp_that_waited_on_a_rating_lock_leaves_the_period_due(catalog, stamp):
    """A rollup (or a reload) reads its clock, then its UPDATE waits on the period's row,
    locked by a rating that started after that clock and cannot see the change (not committed
    yet). After both commit, the period is due again: else a closing period would be invoiced
    without that usage."""
    catalog(contract())
    org_rate(org=Org.objects.get(slug="acme"), as_of=AS_OF)
    period = the_period()
    assert periods_due(now=AS_OF) == []
    locked, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def rating() -> None:
        """As ``period_rate`` does: lock the row, then store rated_at (its start: after the
        stamp's clock, since the stamp is already waiting)."""
        try:
            with transaction.atomic():
                row = lock_period(period_id=period.pk)
                locked.set()
                assert release.wait(timeout=120), "the stamp never waited on the lock"
                row.rated_at = timezone.now()
                row.save(update_fields=["rated_at"])
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
            locked.set()
        finally:
            connections.close_all()

    def stamping() -> None:
        try:
            with transaction.atomic():
                STAMPS[stamp](period.org_id)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=rating)
    first.start()
    assert locked.wait(timeout=120)
    second = threading.Thread(target=stamping)
    second.start()
    try:
        assert wait_until(_blocked_on_a_lock) == 1
    finally:
        release.set()
        first.join(timeout=120)
        second.join(timeout=120)

    assert errors == []
    period.refresh_from_db()
    assert period.usage_changed_at is not None
    assert period.rated_at is not None
    assert period.usage_changed_at > period.rated_at
    assert periods_due(now=AS_OF) == [period.pk]
