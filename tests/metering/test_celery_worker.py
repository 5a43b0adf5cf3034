"""The rollup task run by a real Celery worker over Redis against the PostgreSQL test database."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection
from django.db.models import Sum

from metering.ingestion import Ingestor
from metering.models import HourlyRollup, RollupMark
from tenancy.services import api_key_create

from ..conftest import make_event
from ..factories import MeterFactory, OrgFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

BROKER = os.environ.get("TESSERA_TEST_BROKER", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Starts real worker processes on the test database; kills them all at the end."""

    def __init__(self) -> None:
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": BROKER,
            "TESSERA_ROLLUP_ON_INGEST": "0",
        }
        # Not the current app: tasks .delay()ed by this process stay in-process (eager).
        self.sender = Celery(broker=BROKER, set_as_current=False)
        # kombu's Redis channel holds the redis client as .client; celery-types declare the
        # abstract StdChannel, which has none.
        self.sender.connection_for_write().default_channel.client.flushdb()  # type: ignore[attr-defined]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, app: str = "config", **env: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "celery", "-A", app, "worker", "--pool=solo"]
        command += ["--loglevel=WARNING", "--without-heartbeat", "--without-mingle"]
        command += ["--without-gossip"]
        proc = subprocess.Popen(command, cwd=ROOT, env={**self.env, **env})
        self.procs.append(proc)
        return proc

    def send(self, name: str, *args: object) -> None:
        self.sender.send_task(name, args=args)

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def workers():
    pool = Workers()
    yield pool
    pool.stop()


@pytest.fixture
def worker(workers):
    workers.start()
    return workers


def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_worker_rolls_up_marked_hours(worker):
    OrgFactory.create(slug="acme")
    MeterFactory.create(key="gpu_time", group_by={"gpu_model": "$.gpu_model"})
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    key = api_key_create(name="c").api_key
    Ingestor(api_key=key).ingest(
        [make_event(id=f"e{i}", time=hour + timedelta(minutes=i)) for i in range(5)]
    )

    worker.send("metering.rollup")

    assert wait_for(lambda: not RollupMark.objects.exists() and HourlyRollup.objects.exists())
    rollup = HourlyRollup.objects.get()
    assert (rollup.hour, rollup.value, rollup.event_count) == (hour, Decimal(300), 5)


def test_worker_killed_mid_rollup_then_rerun_gives_the_uninterrupted_totals(workers):
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

    victim = workers.start(TESSERA_ROLLUP_BATCH_HOURS="40")
    workers.send("metering.rollup")
    assert wait_for(lambda: 0 < RollupMark.objects.count() < marks - 40, timeout=60)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    left = RollupMark.objects.count()
    assert 0 < left < marks

    workers.start()
    workers.send("metering.rollup")  # what beat sends every interval
    assert wait_for(lambda: not RollupMark.objects.exists())

    expected = {org.slug: sum(Decimal(h % 7 + 1) for h in range(700)) for org in orgs}
    totals = dict(
        HourlyRollup.objects.values("org__slug")
        .annotate(v=Sum("value"))
        .values_list("org__slug", "v")
    )
    assert totals == expected
    assert HourlyRollup.objects.count() == 2800
