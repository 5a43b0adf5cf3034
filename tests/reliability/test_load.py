"""Ingestion under load: several client processes post batches (new events with duplicates
mixed in: their own and each other's) to a real gunicorn on PostgreSQL for a bounded time.
Afterwards stored events = distinct events sent, each accepted exactly once across all the
concurrent answers, and the rollups hold exactly the distinct events' GPU-seconds.

``TESSERA_LOAD_SECONDS`` sets the duration (default 10; CI keeps the default);
``bench/load.py`` runs the same load for longer and prints the figures."""

import os
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Sum

from metering.models import HourlyRollup, UsageEvent
from metering.rollups import rollup_pending
from tenancy.services import api_key_create

from ..factories import MeterFactory, OrgFactory
from . import loadgen
from .servers import Server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SECONDS = float(os.environ.get("TESSERA_LOAD_SECONDS", "10"))


def test_concurrent_ingestion_with_duplicates_stores_each_event_once(tmp_path):
    for slug in loadgen.ORGS:
        OrgFactory.create(slug=slug)
    MeterFactory.create(key="gpu_time", group_by={"gpu_model": "$.gpu_model", "region": "$.region"})
    key = api_key_create(name="load").raw_key
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)

    server = Server(url, workers=4, var_dir=tmp_path)
    try:
        result = loadgen.run(url=server.url, key=key, base=base, clients=4, seconds=SECONDS)
    finally:
        server.close()
    print("\n" + result.figures())  # noqa: T201

    assert result.total("rejected") == 0
    assert len(result.distinct) > 1000  # the load was real
    assert result.total("duplicates") > 0  # and duplicates were in it
    # Each distinct event was accepted by exactly one of the concurrent answers.
    assert result.total("accepted") == len(result.distinct)
    assert result.total("accepted") + result.total("duplicates") == result.sent
    assert UsageEvent.objects.count() == len(result.distinct)

    rollup_pending()
    rolled = dict(
        HourlyRollup.objects.values("org__slug")
        .annotate(s=Sum("value"))
        .values_list("org__slug", "s")
    )
    assert rolled == result.expected_per_org()
