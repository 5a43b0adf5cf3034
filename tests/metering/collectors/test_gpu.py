from decimal import Decimal

from metering.collectors.common import iso

from .conftest import T0, held


def by_device(events):
    return {(e["data"]["gpu_uuid"], e["data"]["window_start"]): e for e in events}


def test_mig_instances_bill_their_fraction_of_the_gpu(rig):
    # given acme holds a 3g and a 1g slice and the 7g instance for one full window
    rig.allocations.rows = [
        held("acme", "MIG-3g-a"),
        held("acme", "MIG-1g"),
        held("acme", "MIG-7g"),
    ]

    # when the window closes
    rig.run_until(T0 + 60)

    # then each slice bills 60 s × its share of 7 slices, rounded to 6 places
    events = by_device(rig.spooled())
    window = iso(T0)
    assert events[("MIG-3g-a", window)]["data"]["gpu_seconds"] == "25.714286"
    assert events[("MIG-1g", window)]["data"]["gpu_seconds"] == "8.571429"
    assert events[("MIG-7g", window)]["data"]["gpu_seconds"] == "60"
    mig = events[("MIG-3g-a", window)]["data"]
    assert mig["mig_profile"] == "3g.20gb"
    assert mig["mig_fraction"] == "0.428571"
    assert mig["gpu_model"] == "A100"
    assert mig["physical_gpu_uuid"] == "GPU-a100"
    assert mig["utilization_avg"] is None  # NVML does not measure it on MIG
    assert mig["energy_joules"] is None
    assert len(events) == 3  # nothing for unallocated devices


def test_allocation_overlap_is_billed_per_org_and_unallocated_time_is_idle(rig):
    # given acme holds the H100 until 20 s into the window, globex from 45 s
    rig.allocations.rows = [
        held("acme", "GPU-h100", T0 - 3600, T0 + 20),
        held("globex", "GPU-h100", T0 + 45),
    ]

    rig.run_until(T0 + 60)

    events = rig.spooled()
    assert sorted((e["subject"], e["data"]["gpu_seconds"]) for e in events) == [
        ("acme", "20"),
        ("globex", "15"),
    ]
    assert {e["id"] for e in events} == {
        f"node-1/GPU-h100/{iso(T0)}/acme",
        f"node-1/GPU-h100/{iso(T0)}/globex",
    }
    # 25 s of the H100, 60 s of the H200, the B200, the sliced A100 (3+3+1 of 7) and the 7g one
    assert rig.telemetry.idle_gpu_seconds._value.get() == 25 + 60 * 4


def test_a_window_with_a_lost_gpu_is_not_billed(rig):
    # given acme holds the H100 for two windows, and the GPU falls off the bus in the second
    rig.allocations.rows = [held("acme", "GPU-h100")]
    rig.run_until(T0 + 90)
    rig.sim.lose_gpu("GPU-h100")

    rig.run_until(T0 + 120)

    events = by_device(rig.spooled())
    first, second = events[("GPU-h100", iso(T0))], events[("GPU-h100", iso(T0 + 60))]
    assert first["data"]["gpu_seconds"] == "60"
    assert first["data"]["billable"] is True
    assert second["data"]["gpu_seconds"] == "0"
    assert second["data"]["billable"] is False
    assert second["data"]["unbillable_reason"] == "gpu_lost"
    assert second["data"]["allocated_seconds"] == "60"


def test_an_xid_makes_the_window_unbillable_but_an_application_xid_does_not(rig):
    rig.allocations.rows = [held("acme", "GPU-h100"), held("acme", "GPU-h200")]
    rig.run_until(T0 + 30)
    rig.sim.inject_xid("GPU-h100", 79)  # fell off the bus
    rig.sim.inject_xid("GPU-h200", 13)  # an application's illegal address

    rig.run_until(T0 + 60)

    events = by_device(rig.spooled())
    assert events[("GPU-h100", iso(T0))]["data"]["unbillable_reason"] == "xid_79"
    assert events[("GPU-h100", iso(T0))]["data"]["gpu_seconds"] == "0"
    assert events[("GPU-h200", iso(T0))]["data"]["gpu_seconds"] == "60"


def test_an_energy_counter_reset_counts_only_energy_actually_spent(rig):
    # given the H200's counter, as the collector reads it at each sample (every 10 s)
    rig.allocations.rows = [held("acme", "GPU-h200")]
    readings = []
    original = rig.sim.nvmlDeviceGetTotalEnergyConsumption

    def spy(handle):
        value = original(handle)
        if rig.sim.nvmlDeviceGetUUID(handle) == "GPU-h200":
            readings.append(value)
        return value

    rig.sim.nvmlDeviceGetTotalEnergyConsumption = spy

    # when the driver reloads at 95 s, restarting the counter from zero
    rig.run_until(T0 + 95)
    rig.sim.reset_energy("GPU-h200")
    rig.run_until(T0 + 120)

    # then the second window counts the deltas up to the reset plus what was counted since it
    # (each delta belongs to the window of the sample that ends it)
    r = dict(zip(range(0, 120, 10), readings, strict=True))
    assert r[100] < r[90]
    event = by_device(rig.spooled())[("GPU-h200", iso(T0 + 60))]["data"]
    assert Decimal(event["energy_joules"]) == Decimal((r[90] - r[50]) + r[110]) / 1000
    assert event["energy_counter_resets"] == 1
    assert event["gpu_seconds"] == "60"  # a driver reload alone is not a health problem
    first = by_device(rig.spooled())[("GPU-h200", iso(T0))]["data"]
    assert Decimal(first["energy_joules"]) == Decimal(r[50] - r[0]) / 1000


def test_a_gap_in_the_collectors_operation_is_reported_not_filled(rig):
    rig.allocations.rows = [held("acme", "GPU-h100")]
    rig.run_until(T0 + 60)

    # when the collector does not run for five minutes
    rig.clock.set(T0 + 360)
    rig.run_until(T0 + 420)

    windows = sorted(e["data"]["window_start"] for e in rig.spooled())
    assert windows == [iso(T0), iso(T0 + 360)]  # nothing invented for 60..360
    assert rig.telemetry.gaps._value.get() == 1
    gaps = rig.spool.get_state("gpu:gaps")
    assert gaps == [{"from": iso(T0 + 50), "to": iso(T0 + 360), "seconds": 310.0}]
    assert rig.collector.health_extra()["recent_gaps"] == gaps


def test_windows_wait_for_allocations_while_the_source_is_down(rig):
    rig.allocations.rows = [held("acme", "GPU-h100")]
    rig.allocations.down = True
    rig.run_until(T0 + 180)
    assert rig.spooled() == []
    assert rig.collector.pending_windows() == 3
    assert "allocations" in rig.telemetry.problems

    rig.allocations.down = False
    rig.collector.attribute()

    assert len(rig.spooled()) == 3
    assert rig.collector.pending_windows() == 0
    assert rig.telemetry.problems == {}
