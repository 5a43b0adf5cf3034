"""The rollup task run by a real Celery worker over Redis against the PostgreSQL test database."""

import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from metering.ingestion import Ingestor
from metering.models import HourlyRollup, RollupMark
from tenancy.services import api_key_create

from ..conftest import make_event
from ..factories import MeterFactory, OrgFactory
from ..support.waiting import wait_until

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

HOOKED = "tests.reliability.hooked"


@pytest.fixture
def worker(workers):
    workers.start()
    return workers


def test_worker_rolls_up_marked_hours(worker):
    OrgFactory.create(slug="acme")
    MeterFactory.create(key="gpu_time", group_by={"gpu_model": "$.gpu_model"})
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    key = api_key_create(name="c").api_key
    Ingestor(api_key=key).ingest(
        [make_event(id=f"e{i}", time=hour + timedelta(minutes=i)) for i in range(5)]
    )

    worker.send("metering.rollup")

    assert wait_until(lambda: not RollupMark.objects.exists() and HourlyRollup.objects.exists())
    rollup = HourlyRollup.objects.get()
    assert (rollup.hour, rollup.value, rollup.event_count) == (hour, Decimal(300), 5)


def test_worker_killed_mid_rollup_then_rerun_gives_the_uninterrupted_totals(workers, tmp_path):
    """SIGKILL during a rollup: committed batches stay, the rest is redone, nothing twice."""
    orgs = [OrgFactory.create(slug=f"org-{i}") for i in range(4)]
    MeterFactory.create(key="gpu_time", group_by={"gpu_model": "$.gpu_model"})
    key = api_key_create(name="c").api_key
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    for org in orgs:
        events = [
            make_event(
                id=f"{org.slug}-{h}",
                subject=org.slug,
                time=first + timedelta(hours=h),
                data={"gpu_seconds": str(h % 7 + 1), "gpu_model": "H100"},
            )
            for h in range(700)
        ]
        Ingestor(api_key=key).ingest(events)
    marks = RollupMark.objects.count()
    assert marks == 2800

    # Batches of 40 marks = 10 hours of 4 orgs: 4 recomputations each. The 10th recomputation
    # is in the third batch; the worker is killed there, inside its transaction.
    paused = tmp_path / "paused"
    victim = workers.start(
        HOOKED,
        TESSERA_ROLLUP_BATCH_HOURS="40",
        TESSERA_REL_PAUSE="metering.rollups:recompute_hours:10",
        TESSERA_REL_SIGNAL=str(paused),
    )
    workers.send("metering.rollup")
    assert wait_until(paused.exists), "the worker never reached the pause point"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert RollupMark.objects.count() == marks - 80  # two batches committed, the third not

    workers.start()
    workers.send("metering.rollup")  # what beat sends every interval
    assert wait_until(lambda: not RollupMark.objects.exists())

    expected = {org.slug: sum(Decimal(h % 7 + 1) for h in range(700)) for org in orgs}
    totals = dict(
        HourlyRollup.objects.values("org__slug")
        .annotate(v=Sum("value"))
        .values_list("org__slug", "v")
    )
    assert totals == expected
    assert HourlyRollup.objects.count() == 2800


def test_the_test_process_still_runs_its_own_tasks_in_process(workers):
    # given the bare app that sends into the workers' queues
    from celery import current_app

    from billing.tasks import rate_due

    workers.send("metering.rollup")

    # then a task called here is still Tessera's, eager: it reaches no broker
    assert current_app.main == "tessera"
    assert rate_due.app.conf.task_always_eager
    assert workers.broker.queued() == 1  # the one sent, nothing else
