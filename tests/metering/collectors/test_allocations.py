"""One device, one window, at most its length: the overlap rule every source passes."""

import json
import logging
from fractions import Fraction

import pytest
import yaml

from metering.collectors.allocations import Allocation, FileAllocations, divide
from metering.collectors.common import iso

from .conftest import T0

HOUR = 3600


def write_allocations(path, rows):
    path.write_text(yaml.safe_dump({"allocations": rows}))


def row(org, uuid, start, end):
    return {"org": org, "node": "node-1", "device_uuid": uuid, "start": iso(start), "end": iso(end)}


def hourly_rig(rig, tmp_path):
    allocations = FileAllocations(tmp_path / "allocations.yaml")
    rig.collector = rig.make_collector(
        allocations=allocations, window_seconds=HOUR, sample_seconds=600
    )
    return rig


def billed(rig):
    return sorted(
        (e["subject"], e["data"]["gpu_uuid"], e["data"]["gpu_seconds"]) for e in rig.spooled()
    )


def test_two_orgs_holding_one_gpu_for_the_same_hour_bill_nobody_twice(rig, tmp_path, caplog):
    # given the scheduler's file says acme and globex both held the H100 for the same hour
    write_allocations(
        tmp_path / "allocations.yaml",
        [row("acme", "GPU-h100", T0, T0 + HOUR), row("globex", "GPU-h100", T0, T0 + HOUR)],
    )
    hourly_rig(rig, tmp_path)

    # when the hour is attributed
    with caplog.at_level(logging.ERROR, logger="tessera.collectors.gpu"):
        rig.run_until(T0 + HOUR, step=600)

    # then nobody is billed for the contested hour (it was 3,600 + 3,600 before), and the
    # conflict is reported: log, metric, health endpoint
    assert billed(rig) == []
    assert rig.telemetry.conflicts._value.get() == 1
    assert rig.telemetry.conflict_gpu_seconds._value.get() == HOUR
    assert "GPU-h100 claimed by acme, globex" in caplog.text
    assert "billed to nobody" in rig.telemetry.problems["allocation_conflicts"]
    assert rig.collector.health_extra()["recent_conflicts"] == [
        {
            "device": "GPU-h100",
            "from": iso(T0),
            "to": iso(T0 + HOUR),
            "orgs": ["acme", "globex"],
            "billed_to": None,
            "claims": ["acme", "globex"],
        }
    ]


def test_the_org_that_held_the_gpu_first_keeps_it(rig, tmp_path):
    # given acme held the H100 since before the hour, globex claims it from 00:20
    write_allocations(
        tmp_path / "allocations.yaml",
        [
            row("acme", "GPU-h100", T0 - HOUR, T0 + 2400),
            row("globex", "GPU-h100", T0 + 1200, T0 + HOUR),
        ],
    )
    hourly_rig(rig, tmp_path)

    rig.run_until(T0 + HOUR, step=600)

    # acme 2,400 s; globex only once acme let go (1,200 s): 3,600 in all
    assert billed(rig) == [("acme", "GPU-h100", "2400"), ("globex", "GPU-h100", "1200")]
    assert rig.telemetry.conflict_gpu_seconds._value.get() == 1200
    [conflict] = rig.collector.health_extra()["recent_conflicts"]
    assert (conflict["from"], conflict["to"], conflict["billed_to"]) == (
        iso(T0 + 1200),
        iso(T0 + 2400),
        "acme",
    )


def test_one_org_with_overlapping_rows_is_billed_the_window_once(rig, tmp_path):
    # given two rows of acme for the H100 that overlap by half an hour
    write_allocations(
        tmp_path / "allocations.yaml",
        [row("acme", "GPU-h100", T0, T0 + 2700), row("acme", "GPU-h100", T0 + 900, T0 + HOUR)],
    )
    hourly_rig(rig, tmp_path)

    rig.run_until(T0 + HOUR, step=600)

    assert billed(rig) == [("acme", "GPU-h100", "3600")]  # was 5,400 in a 3,600 s window
    assert rig.telemetry.conflicts._value.get() == 0
    assert "allocation_conflicts" not in rig.telemetry.problems


def test_a_conflict_on_a_mig_slice_counts_its_fraction(rig, tmp_path):
    write_allocations(
        tmp_path / "allocations.yaml",
        [row("acme", "MIG-1g", T0, T0 + HOUR), row("globex", "MIG-1g", T0 + 1800, T0 + HOUR)],
    )
    hourly_rig(rig, tmp_path)

    rig.run_until(T0 + HOUR, step=600)

    assert billed(rig) == [("acme", "MIG-1g", "514.285714")]  # 3,600 × 1/7
    assert rig.telemetry.conflict_gpu_seconds._value.get() == pytest.approx(1800 / 7)


@pytest.mark.parametrize(
    ("claims", "held", "contested"),
    [
        # (org, start, end) in seconds of a 60 s window
        ([("a", 0, 60), ("a", 10, 50)], {"a": 60}, 0),
        ([("a", 0, 30), ("b", 30, 60)], {"a": 30, "b": 30}, 0),
        ([("a", 0, 60), ("b", 0, 60)], {}, 60),
        ([("a", -10, 40), ("b", 20, 60)], {"a": 40, "b": 20}, 0),
        ([("a", -10, 60), ("b", 0, 30), ("c", 10, 20)], {"a": 60}, 0),
        ([("a", 0, 60), ("b", 0, 30)], {"a": 30}, 30),
        ([("a", 0, None), ("b", 0, 30)], {"a": 30}, 30),
    ],
)
def test_divide_never_gives_more_than_the_window(claims, held, contested):
    rows = [Allocation(org, "GPU-x", T0 + s, None if e is None else T0 + e) for org, s, e in claims]

    shares, conflicts = divide(rows, T0, T0 + 60)

    assert shares == {org: Fraction(s) for org, s in held.items()}
    assert sum(c.seconds for c in conflicts if c.holder is None) == contested
    assert sum(shares.values()) + contested <= 60


def test_allocation_file_changes_are_read_and_a_broken_file_makes_windows_wait(rig, tmp_path):
    path = tmp_path / "allocations.yaml"
    path.write_text("allocations: [")
    hourly_rig(rig, tmp_path)
    rig.run_until(T0 + HOUR, step=600)
    assert rig.spooled() == []
    assert "not a valid allocation file" in rig.telemetry.problems["allocations"]

    write_allocations(path, [row("acme", "GPU-h200", T0, T0 + HOUR)])
    rig.collector.attribute()

    assert billed(rig) == [("acme", "GPU-h200", "3600")]
    assert json.loads(rig.spool.batch(1)[0].body)["time"] == "2026-10-01T00:00:00Z"
