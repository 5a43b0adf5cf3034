"""SPEC §8: one org's (or one hour's) bad data is quarantined; every other hour and org is
rolled up. Faults are injected two ways: a recompute that raises for one org or hour (any bug
one org's data could trigger), and a row written straight into the events table, bypassing the
API, as data from before validation existed would be."""

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from metering import rollups
from metering.ingestion import Ingestor
from metering.models import HourlyRollup, QuarantinedWork, RollupMark, UsageEvent
from metering.rollups import rollup_pending
from metering.tasks import rollup as rollup_task
from tenancy.models import ApiKey, Org
from tenancy.services import api_key_create

from ..conftest import make_event

H0 = datetime(2026, 11, 20, 3, tzinfo=UTC)
H1 = H0 + timedelta(hours=1)


@pytest.fixture
def collector(db: None) -> ApiKey:
    return api_key_create(name="collector").api_key


def gpu(i: int, org: str, hour: datetime, seconds: str = "60") -> dict[str, Any]:
    return make_event(
        id=f"{org}-{i}",
        subject=org,
        time=hour + timedelta(minutes=i),
        data={"gpu_seconds": seconds, "gpu_model": "H100", "region": "eu-north"},
    )


def ingest(collector: ApiKey, events: list[dict[str, Any]]) -> None:
    result = Ingestor(api_key=collector, now=H1 + timedelta(days=1)).ingest(events)
    assert result.rejected == 0, result.errors


def rolled(org: Org) -> dict[datetime, Decimal]:
    return dict(HourlyRollup.objects.filter(org=org).values_list("hour", "value"))


def open_work(org: Org) -> list[QuarantinedWork]:
    return list(QuarantinedWork.objects.filter(org=org, resolved_at__isnull=True).order_by("hour"))


def gauge(kind: str) -> str:
    text = Client().get("/metrics").content.decode()
    line = next(
        ln for ln in text.splitlines() if ln.startswith(f'tessera_quarantined_work{{kind="{kind}"')
    )
    return line.split()[-1]


def fail_for(monkeypatch: pytest.MonkeyPatch, org: Org, hour: datetime | None = None) -> None:
    """Make the per-hour recompute raise for ``org`` (only for ``hour`` when given)."""
    real = rollups.recompute_hours

    def faulty(*, meter: Any, org_id: int, hours: list[datetime]) -> None:
        if org_id == org.pk and (hour is None or hour in hours):
            raise ArithmeticError(f"injected fault for {org.slug}")
        real(meter=meter, org_id=org_id, hours=hours)

    monkeypatch.setattr(rollups, "recompute_hours", faulty)


@pytest.mark.usefixtures("gpu_meter")
def test_one_orgs_failing_hours_are_quarantined_and_every_other_org_is_rolled_up(
    collector, org, other_org, monkeypatch
):
    ingest(collector, [gpu(1, "acme", H0), gpu(2, "acme", H1),
                       gpu(1, "globex", H0), gpu(2, "globex", H1, "30")])  # fmt: skip
    fail_for(monkeypatch, org)
    before = timezone.now()

    consumed = rollup_pending()

    assert consumed == 4
    assert rolled(other_org) == {H0: Decimal(60), H1: Decimal(30)}
    assert rolled(org) == {}
    held = open_work(org)
    assert [(w.kind, w.event_type, w.hour, w.attempts) for w in held] == [
        ("rollup", "gpu.usage", H0, 1),
        ("rollup", "gpu.usage", H1, 1),
    ]
    assert held[0].error == "ArithmeticError: injected fault for acme"
    assert held[0].unit == "gpu.usage@2026-11-20T03:00:00+00:00"
    assert held[0].next_attempt_at - held[0].last_failed_at == timedelta(seconds=60)
    assert held[0].last_failed_at >= before
    assert not RollupMark.objects.exists()  # consumed: the quarantine holds them now
    assert gauge("rollup") == "2.0"
    assert gauge("rating") == "0.0"


@pytest.mark.usefixtures("gpu_meter")
def test_only_the_failing_hour_is_held_the_orgs_other_hours_roll_up(collector, org, monkeypatch):
    ingest(collector, [gpu(1, "acme", H0), gpu(2, "acme", H1, "45")])
    fail_for(monkeypatch, org, hour=H0)

    rollup_pending()

    assert rolled(org) == {H1: Decimal(45)}
    assert [w.hour for w in open_work(org)] == [H0]


@pytest.mark.usefixtures("gpu_meter")
def test_a_quarantined_hour_is_retried_with_backoff_and_resolved_when_it_succeeds(
    collector, org, monkeypatch
):
    ingest(collector, [gpu(1, "acme", H0)])
    fail_for(monkeypatch, org)
    rollup_pending()
    (held,) = open_work(org)

    # Before its backoff expires a rollup run does not touch it.
    assert rollup_pending() == 0
    assert open_work(org)[0].attempts == 1

    # Backoff expired, still failing: one more attempt, the delay doubles.
    QuarantinedWork.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now())
    assert rollup_pending() == 1
    (held,) = open_work(org)
    assert held.attempts == 2
    assert held.next_attempt_at - held.last_failed_at == timedelta(seconds=120)

    # The fault is gone (fixed code or data): the next due retry rolls it up and resolves it.
    monkeypatch.undo()
    QuarantinedWork.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now())
    assert rollup_pending() == 1

    assert rolled(org) == {H0: Decimal(60)}
    assert open_work(org) == []
    held.refresh_from_db()
    assert held.resolved_at is not None
    assert gauge("rollup") == "0.0"


@pytest.mark.usefixtures("gpu_meter")
def test_the_rollup_task_completes_despite_a_failing_org(collector, org, other_org, monkeypatch):
    ingest(collector, [gpu(1, "acme", H0), gpu(1, "globex", H0)])
    fail_for(monkeypatch, org)

    assert rollup_task.apply().get() == 2

    assert rolled(other_org) == {H0: Decimal(60)}
    assert len(open_work(org)) == 1


@pytest.mark.postgres
@pytest.mark.usefixtures("gpu_meter")
def test_a_bad_row_in_the_events_table_holds_only_its_own_hour(collector, org, other_org):
    """A value PostgreSQL's numeric cast refuses, stored before validation existed."""
    ingest(collector, [gpu(2, "acme", H0), gpu(3, "acme", H1, "15"), gpu(1, "globex", H0)])
    UsageEvent.objects.create(
        org=org,
        source="legacy",
        event_id="bad-1",
        type="gpu.usage",
        time=H0 + timedelta(minutes=30),
        data={"gpu_seconds": "1_000", "gpu_model": "H100", "region": "eu-north"},
        content_hash="0" * 64,
        received_at=H0,
    )
    RollupMark.objects.update_or_create(
        org=org, event_type="gpu.usage", hour=H0, defaults={"marked_at": H0}
    )

    rollup_pending()

    assert rolled(other_org) == {H0: Decimal(60)}
    assert rolled(org) == {H1: Decimal(15)}
    (held,) = open_work(org)
    assert held.hour == H0
    assert held.error.startswith("DataError: invalid input syntax for type numeric")


@pytest.mark.usefixtures("gpu_meter")
def test_the_rollup_command_reports_the_quarantined_hour_and_exits_non_zero(
    collector, org, other_org, monkeypatch
):
    ingest(collector, [gpu(1, "acme", H0), gpu(1, "globex", H0)])
    fail_for(monkeypatch, org)
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="1 hour\\(s\\) quarantined"):
        call_command("rollup", stdout=out, stderr=err)

    assert "Rolled up 2 (org, event type, hour) marks." in out.getvalue()
    assert "acme gpu.usage@2026-11-20T03:00:00+00:00: ArithmeticError" in err.getvalue()
    assert rolled(other_org) == {H0: Decimal(60)}
