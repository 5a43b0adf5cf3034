import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from metering.collectors.common import iso
from metering.collectors.spool import Spool

from ...support.waiting import wait_until
from .conftest import FLEET, T0, Rig, held
from .fakeapi import KEY

HOUR = 3600


def test_api_down_for_hours_then_back_delivers_every_window_once(tmp_path, api):
    # given a collector whose API (events and allocations) is down for six hours
    rig = Rig(tmp_path, api)
    assert rig.sender is not None
    rig.allocations.rows = [held("acme", "GPU-h100"), held("globex", "MIG-1g")]
    api.down = True
    for hour in range(6):
        rig.run_until(T0 + (hour + 1) * HOUR)
        rig.mono += HOUR
        rig.sender.flush()
    assert api.events == {}
    assert rig.spool.pending() == 2 * 6 * 60
    assert rig.sender.failures >= 6

    # when it comes back
    api.down = False
    rig.mono += 10_000
    assert rig.sender.drain(60)

    # then every (org, device, window) arrived exactly once, and a replay is only duplicates
    windows = {
        (k[0], e["data"]["gpu_uuid"], e["data"]["window_start"]) for k, e in api.events.items()
    }
    assert len(api.events) == len(windows) == 720
    assert {iso(T0 + 60 * i) for i in range(360)} == {w for _, _, w in windows}
    assert rig.spool.pending() == 0
    assert api.rejections == []


def test_a_rejected_event_is_kept_aside_and_never_resent(tmp_path, api):
    rig = Rig(tmp_path, api)
    assert rig.sender is not None
    rig.allocations.rows = [held("acme", "GPU-h100"), held("nobody", "GPU-h200")]
    api.reject_if = lambda e: (
        ["subject 'nobody' is not a known org"] if e["subject"] == "nobody" else []
    )
    rig.run_until(T0 + 120)

    rig.sender.flush()
    rig.sender.flush()

    assert len(api.events) == 2
    assert len(api.rejections) == 2  # each refused once, not retried
    assert rig.spool.pending() == 0
    kept = rig.spool.rejected()
    assert [k["event"]["subject"] for k in kept] == ["nobody", "nobody"]
    assert kept[0]["reasons"] == ["subject 'nobody' is not a known org"]


def test_throttling_is_waited_out(tmp_path, api):
    rig = Rig(tmp_path, api)
    assert rig.sender is not None
    rig.allocations.rows = [held("acme", "GPU-h100")]
    rig.run_until(T0 + 60)
    api.throttle = 2

    assert rig.sender.drain(30, sleep=lambda s: setattr(rig, "mono", rig.mono + s + 0.001))

    assert len(api.events) == 1


def _collector(tmp_path: Path, api_url: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "metering.collectors.gpu",
            "--simulate",
            str(tmp_path / "fleet.yaml"),
            "--simulate-from",
            iso(T0),
            "--simulate-to",
            iso(T0 + 24 * HOUR),
            "--sample-seconds",
            "20",
            "--allocations-file",
            str(tmp_path / "allocations.yaml"),
            "--spool",
            str(tmp_path / "spool.sqlite3"),
            "--api-url",
            api_url,
            "--log-level",
            "WARNING",
            *extra,
        ],
        env={**os.environ, "TESSERA_COLLECTOR_KEY": KEY},
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_a_collector_killed_mid_run_and_restarted_neither_loses_nor_doubles_a_window(tmp_path, api):
    # given a simulated day, with acme holding the H100 and globex a 3g slice
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(FLEET))
    (tmp_path / "allocations.yaml").write_text(
        yaml.safe_dump(
            [
                {
                    "org": "acme",
                    "node": "node-1",
                    "device_uuid": "GPU-h100",
                    "start": iso(T0),
                    "end": None,
                },
                {
                    "org": "globex",
                    "node": "node-1",
                    "device_uuid": "MIG-3g-a",
                    "start": iso(T0),
                    "end": None,
                },
            ]
        )
    )
    spool = tmp_path / "spool.sqlite3"

    # when the collector is killed with SIGKILL while it is sampling
    first = _collector(tmp_path, api.url)

    def sampled_six_hours() -> bool:
        cursor = (Spool(spool).get_state("gpu:cursor") or {}) if spool.exists() else {}
        return cursor.get("last_sample", 0) > T0 + 6 * HOUR

    assert wait_until(sampled_six_hours)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = Spool(spool).get_state("gpu:cursor")["last_sample"]
    assert T0 < killed_at < T0 + 24 * HOUR

    # and restarted
    second = _collector(tmp_path, api.url)
    output = second.communicate(timeout=120)[0].decode()
    assert second.returncode == 0, output

    # then every window of the day arrived exactly once per allocated device
    assert api.rejections == []  # no window was re-measured with other content
    windows = sorted(
        (e["data"]["gpu_uuid"], e["data"]["window_start"], e["data"]["gpu_seconds"])
        for e in api.events.values()
    )
    expected = sorted(
        (uuid, iso(T0 + 60 * i), seconds)
        for i in range(24 * 60)
        for uuid, seconds in (("GPU-h100", "60"), ("MIG-3g-a", "25.714286"))
    )
    assert windows == expected
    assert Spool(spool).pending() == 0
    assert "gap" not in output  # the restart resumed the simulated clock where it stopped
