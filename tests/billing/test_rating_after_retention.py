"""Retention exports raw events to Parquet and drops their partitions; charges do not change,
because rating reads rollups (SPEC §4, §8; metering/partitions.py)."""

import hashlib
import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from metering.models import HourlyRollup, UsageEvent, UsageEventKey
from metering.partitions import partition_name, partitions_ensure, partitions_list, retention_run
from tenancy.models import Org

from ..conftest import vendor
from .conftest import START, charges, contract, gpu, ingest
from .test_rating import END, rate

pytestmark = pytest.mark.skipif(vendor() != "postgresql", reason="partitioning is PostgreSQL only")


def test_period_rerated_after_its_raw_events_were_dropped_gives_the_same_charges(
    catalog, settings, tmp_path
):
    catalog(contract())
    ingest([gpu(0, "600"), gpu(1, "634"), gpu(30, "1800", n=1)])  # both days of the period
    before = charges(rate())
    rollups = sorted(HourlyRollup.objects.values_list("hour", "dims_key", "value"))
    partitions_ensure(now=END, ahead_days=0)

    days = [partition_name(START.date()), partition_name(START.date() + timedelta(days=1))]
    # A day before the period's first day passes the retention (late window + 60 days): the
    # (empty) older partitions go, the period's stay.
    retention_days = settings.TESSERA_LATE_WINDOW_DAYS + settings.TESSERA_RETENTION_EXTRA_DAYS
    early = retention_run(directory=tmp_path, now=START + timedelta(days=retention_days - 1))
    assert early.dropped
    assert not set(early.dropped) & set(days)
    assert UsageEvent.objects.count() == 3

    report = retention_run(directory=tmp_path, now=END + timedelta(days=retention_days))

    assert set(days) <= set(report.dropped)
    assert not {p.name for p in partitions_list()} & set(days)
    assert UsageEvent.objects.count() == 0
    assert UsageEventKey.objects.count() == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entries = {e["partition"]: e for e in manifest["partitions"]}
    assert [entries[d]["rows"] for d in days] == [2, 1]
    for day in days:
        path = tmp_path / entries[day]["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entries[day]["sha256"]
        table = pq.read_table(path)
        assert table.num_rows == entries[day]["rows"]
    exported = pq.read_table(tmp_path / entries[days[0]]["file"]).to_pylist()
    assert [json.loads(r["data"])["gpu_seconds"] for r in exported] == ["600", "634"]

    # Rollups kept; re-rating the period from them gives the same charges.
    assert sorted(HourlyRollup.objects.values_list("hour", "dims_key", "value")) == rollups
    assert charges(rate()) == before
    # The command on an already-cleaned store has nothing left to drop.
    call_command("event_retention", "--dir", str(tmp_path))
    assert Org.objects.filter(slug="acme").exists()
