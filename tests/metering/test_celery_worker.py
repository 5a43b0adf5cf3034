"""The rollup task run by a real Celery worker over Redis against the PostgreSQL test database."""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from metering.ingestion import Ingestor
from metering.models import HourlyRollup, RollupMark
from tenancy.services import api_key_create

from ..conftest import make_event
from ..factories import MeterFactory, OrgFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

BROKER = os.environ.get("TESSERA_TEST_BROKER", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker():
    """A worker process on the test database, with its own broker db, killed at the end."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "TESSERA_ROLLUP_ON_INGEST": "0",
    }
    sender = Celery(broker=BROKER)
    sender.connection_for_write().default_channel.client.flushdb()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
    )
    yield sender
    proc.kill()
    proc.wait(timeout=30)


def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_worker_rolls_up_marked_hours(worker):
    OrgFactory(slug="acme")
    MeterFactory(key="gpu_time", group_by={"gpu_model": "$.gpu_model"})
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    key = api_key_create(name="c").api_key
    Ingestor(api_key=key).ingest(
        [make_event(id=f"e{i}", time=hour + timedelta(minutes=i)) for i in range(5)]
    )

    worker.send_task("metering.rollup")

    assert wait_for(lambda: not RollupMark.objects.exists() and HourlyRollup.objects.exists())
    rollup = HourlyRollup.objects.get()
    assert (rollup.hour, rollup.value, rollup.event_count) == (hour, Decimal(300), 5)
