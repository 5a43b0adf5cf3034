"""Real Celery worker processes over this run's Redis broker, on the PostgreSQL test database."""

import os
import subprocess
import sys
from pathlib import Path
from typing import IO

from django.db import connection

from .broker import WORKER_BROKER, Broker

ROOT = Path(__file__).resolve().parents[2]


def worker_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database)."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def worker_command(app: str = "config", loglevel: str = "WARNING") -> list[str]:
    command = [sys.executable, "-m", "celery", "-A", app, "worker", "--pool=solo"]
    command += [f"--loglevel={loglevel}", "--without-heartbeat", "--without-mingle"]
    return [*command, "--without-gossip"]


class Workers:
    """Starts real worker processes on the test database; kills them all at the end. The
    broker's keys of this run are cleared first, so each test starts with empty queues."""

    def __init__(self, broker: Broker | None = None) -> None:
        self.broker = broker or Broker(WORKER_BROKER)
        self.env = {
            **os.environ,
            **self.broker.env(),
            "DATABASE_URL": worker_database_url(),
            "TESSERA_ROLLUP_ON_INGEST": "0",
        }
        self.broker.clear()
        self.sender = self.broker.sender()
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, app: str = "config", *, log: IO[bytes] | None = None, **env: str
    ) -> subprocess.Popen[bytes]:
        loglevel = "INFO" if log else "WARNING"
        proc = subprocess.Popen(
            worker_command(app, loglevel), cwd=ROOT, env={**self.env, **env}, stdout=log,
            stderr=log,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def send(self, name: str, *args: object) -> None:
        self.sender.send_task(name, args=args)

    def stop(self) -> None:
        """Kill the workers and clear this run's keys; again (the fixture after a test that
        stopped them itself) does nothing new."""
        for proc in self.procs:
            proc.kill()
            proc.wait(timeout=30)
        self.procs.clear()
        self.sender.close()
        self.broker.clear()
