"""CI runs every benchmark once at its tiny size (``.ci/run``), so that none of them rots while
nobody measures: the benchmarks in bench/ are found, not listed, here and in ``.ci/run``."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings

from .support.broker import WORKER_BROKER

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(
    p for p in (ROOT / "bench").glob("*.py") if p.name not in ("common.py", "__init__.py")
)


def test_there_are_benchmarks_and_ci_runs_every_one_of_them_tiny():
    ci = (ROOT / ".ci" / "run").read_text()
    assert {p.name for p in BENCHMARKS} >= {"ingest.py", "invoicing.py", "load.py", "rating.py"}
    skip = '  case "$bench" in bench/common.py | bench/__init__.py) continue ;; esac'
    assert f"for bench in bench/*.py; do\n{skip}" in ci
    assert '.venv/bin/python "$bench" --tiny' in ci


def _calls(source: str, names: set[str]) -> list[tuple[str, ast.Call]]:
    return [
        (node.func.id, node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
    ]


@pytest.mark.parametrize("bench", BENCHMARKS, ids=lambda p: p.name)
def test_each_benchmark_takes_its_tiny_sizes_through_the_shared_parser(bench: Path):
    calls = _calls(bench.read_text(), {"parse", "add_common_arguments"})
    assert {name for name, _ in calls} == {"parse", "add_common_arguments"}
    [parse] = [call for name, call in calls if name == "parse"]
    assert [keyword.arg for keyword in parse.keywords] == ["tiny"]


@pytest.mark.parametrize("bench", BENCHMARKS, ids=lambda p: p.name)
def test_each_benchmark_starts_at_head(bench: Path):
    """Its imports resolve and its options parse (running it, even tiny, is CI's job)."""
    done = subprocess.run(
        [sys.executable, str(bench), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--tiny" in done.stdout


@pytest.mark.postgres
@pytest.mark.celery_worker
def test_the_rating_benchmark_rates_through_real_celery_workers_and_stops_them():
    """``bench/rating.py --celery`` at its tiny size (CI's tiny runs are in-process): two real
    workers rate every period, their pool processes' peak RSS is printed, and the run leaves
    neither a worker nor a broker key behind."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "TESSERA_BENCH_POSTGRES": f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}",
        "TESSERA_BENCH_BROKER": WORKER_BROKER,
    }
    done = subprocess.run(
        [sys.executable, "bench/rating.py", "--tiny", "--celery", "--workers", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rating through Celery: 5 orgs × 5 products × 48 h" in done.stdout
    assert "2 worker(s)); 35 charges" in done.stdout
    # The checksum that compares engines on one seed, as the in-process run prints it.
    assert (
        "checksum: burst 5 696.8000; covered 5 0.0000; on_demand 20 561.6200; reservation 5 "
        "1920.0000; subtotals 3178.4200, forecasts 53603.4800; rows sha256 "
    ) in done.stdout, done.stdout
    assert re.search(r"peak RSS, worker 1: pool process \d+ MiB", done.stdout), done.stdout
    [prefix] = re.findall(r"keys under (\S+)", done.stdout)
    with redis.Redis.from_url(WORKER_BROKER) as client:
        assert list(client.scan_iter(match=f"{prefix}*")) == []
