"""What the benchmarks share: a scratch PostgreSQL database of their own, the ``--tiny`` switch
(CI runs every benchmark once at that size, in seconds), and figures printed as ratios against
a baseline measured in the same run, so that a figure means the same on a fast and a slow (or
busy) machine."""

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

import psycopg
import redis
from celery import Celery

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
# The PostgreSQL server (not database) the benchmarks create their databases on.
SERVER = os.environ.get("TESSERA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
# The Redis database the benchmarks' real Celery workers use, under a key prefix of the run's.
BROKER = os.environ.get("TESSERA_BENCH_BROKER", "redis://127.0.0.1:6379/10")


def production_settings(**extra: str) -> None:
    """Run Django as production does, in this process and the workers it starts: DEBUG off
    (with DEBUG on, every query is also kept in ``connection.queries`` and timed by the debug
    cursor), a real-looking SECRET_KEY, plain HTTP on loopback, warnings only. ``extra``:
    more settings from the environment (config/settings/env.py)."""
    os.environ.update(
        DEBUG="false",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-" + "x" * 50,
        TESSERA_SSL_REDIRECT="false",
        DJANGO_SETTINGS_MODULE="config.settings",
        **extra,
    )
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def add_common_arguments(parser: argparse.ArgumentParser, *, kind: str) -> None:
    parser.add_argument(
        "--tiny", action="store_true", help="a few seconds' worth, to check that it runs (CI)"
    )
    parser.add_argument(
        "--database",
        help=f"PostgreSQL database to use: dropped first and kept afterwards (default: a "
        f"scratch tessera_bench_{kind}_<pid>, dropped afterwards)",
    )


def parse(parser: argparse.ArgumentParser, tiny: dict[str, object]) -> argparse.Namespace:
    """Parse, then apply the ``--tiny`` sizes to every size option left at its default."""
    args = parser.parse_args()
    if args.tiny:
        for name, value in tiny.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    if args.database is not None and not args.database.isidentifier():
        parser.error("--database must be a plain identifier")
    return args


@contextmanager
def scratch_database(kind: str, name: str | None = None) -> Iterator[str]:
    """A fresh database on ``SERVER``; yields its URL (``postgres://``, as settings take it)."""
    database = name or f"tessera_bench_{kind}_{os.getpid()}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    try:
        yield f"{SERVER}/{database}".replace("postgresql://", "postgres://", 1)
    finally:
        if name is None:
            with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def psycopg_url(database_url: str) -> str:
    return database_url.replace("postgres://", "postgresql://", 1)


def versus(value: float, baseline: float) -> str:
    """``value`` as a multiple of ``baseline`` (both in the same unit)."""
    return f"{value / baseline:6.2f}× the baseline" if baseline else "   n/a (baseline 0)"


def banner(title: str, baseline: str) -> None:
    print(title)
    print(f"baseline (same run): {baseline}")


def wait_for(predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.25) -> T:
    """Call ``predicate`` until it returns something truthy and return that; raise
    ``TimeoutError`` naming ``what`` after ``timeout`` seconds. ``interval`` only keeps the
    poll off the CPUs the workers need; it never paces the measurement."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size (``VmHWM`` of /proc/<pid>/status) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for process {pid}")


def child_pids(pid: int) -> list[int]:
    """The live children of ``pid`` (a Celery worker's pool processes), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the live processes ``pids`` (from
    /proc/<pid>/stat; a process gone meanwhile counts 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


class CeleryWorkers:
    """``count`` real ``celery -A config worker`` processes (prefork, ``concurrency`` pool
    processes each), as production runs them, on ``database_url`` and the Redis database
    ``broker`` under ``prefix`` (Celery's ``global_keyprefix``, read by the workers from
    ``TESSERA_BROKER_KEY_PREFIX``), so a run never meets another one's queues. Use as a
    context manager: the workers get a warm shutdown (SIGTERM) at the end, SIGKILL only if one
    has not exited after ``STOP_TIMEOUT`` seconds, and the run's broker keys are deleted."""

    STOP_TIMEOUT = 60.0

    def __init__(
        self, count: int, *, database_url: str, broker: str, prefix: str, concurrency: int = 1,
        log: IO[bytes] | None = None, env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.count, self.concurrency = count, concurrency
        self.broker, self.prefix = broker, prefix
        self.log = log
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker,
            "TESSERA_BROKER_KEY_PREFIX": prefix,
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            # A bench box or container often runs as root: the workers' output stays readable.
            "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges",
            **(env or {}),
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> "CeleryWorkers":
        self.clear()
        name = self.prefix.strip(":")
        for i in range(self.count):
            command = [
                sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork",
                f"--concurrency={self.concurrency}", f"--hostname={name}-{i}@%h",
                f"--loglevel={self.env['LOG_LEVEL']}", "--without-heartbeat",
                "--without-mingle", "--without-gossip",
            ]  # fmt: skip
            self.procs.append(
                # The banner goes to stdout; warnings and errors to stderr (or both to log).
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=self.env,
                    stdout=self.log or subprocess.DEVNULL,
                    stderr=self.log,
                )  # fmt: skip
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sender(self) -> Celery:
        """A bare Celery app that sends tasks by name into this run's queues."""
        return Celery(
            broker=self.broker,
            broker_transport_options={"global_keyprefix": self.prefix},
            set_as_current=False,
        )

    def alive(self) -> bool:
        return all(proc.poll() is None for proc in self.procs)

    def pools(self) -> list[list[int]]:
        """Per worker, the pids of its pool processes."""
        return [child_pids(proc.pid) for proc in self.procs]

    def ready(self) -> bool:
        """Every worker has started its full pool."""
        if not self.alive():
            raise RuntimeError("a Celery worker exited; see its output above")
        return all(len(pool) >= self.concurrency for pool in self.pools())

    def peak_rss(self) -> list[tuple[float, list[float]]]:
        """Per worker: (peak RSS of the main process, [peak RSS of each pool process]), MiB."""
        return [
            (vm_hwm_mib(proc.pid), [vm_hwm_mib(child) for child in pool])
            for proc, pool in zip(self.procs, self.pools(), strict=True)
        ]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the task at hand
        for proc in self.procs:
            try:
                proc.wait(timeout=self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        self.procs.clear()
        self.clear()

    def clear(self) -> None:
        """Delete this run's broker keys (queues, unacked messages); nobody else's."""
        with redis.Redis.from_url(self.broker) as client:
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)

    def queued(self, queue: str = "celery") -> int:
        with redis.Redis.from_url(self.broker) as client:
            return int(client.llen(f"{self.prefix}{queue}"))
