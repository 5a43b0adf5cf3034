"""The Redis broker of the real-worker tests, shared safely by concurrent test runs.

Redis has 16 databases and every checkout on a machine sees the same ones, so a run never
flushes one. It takes a key prefix of its own instead: Celery's ``global_keyprefix``
transport option, which the workers it starts read from ``TESSERA_BROKER_KEY_PREFIX``
(``config.settings.tasks``), and it deletes only keys under that prefix.

``TESSERA_TEST_BROKER`` (real-worker tests, default db 15) and ``TESSERA_DEMO_TEST_BROKER``
(the demo on PostgreSQL, default db 12) still choose the server and database."""

import os

import redis
from celery import Celery

from .isolation import run_id

WORKER_BROKER = os.environ.get("TESSERA_TEST_BROKER", "redis://127.0.0.1:6379/15")
DEMO_BROKER = os.environ.get("TESSERA_DEMO_TEST_BROKER", "redis://127.0.0.1:6379/12")


class Broker:
    """One Redis database, seen through this run's key prefix."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"tessera-test-{run_id()}:"

    def env(self) -> dict[str, str]:
        """What a worker or a command started by the test needs to use this broker."""
        return {"CELERY_BROKER_URL": self.url, "TESSERA_BROKER_KEY_PREFIX": self.prefix}

    def sender(self) -> Celery:
        """A bare Celery app that sends tasks by name into this run's queues. Not the current
        app: ``shared_task`` proxies follow the current app, and the test process's own tasks
        must stay eager instead of going to this broker."""
        return Celery(
            broker=self.url,
            broker_transport_options={"global_keyprefix": self.prefix},
            set_as_current=False,
        )

    def keys(self) -> list[bytes]:
        with redis.Redis.from_url(self.url) as client:
            return list(client.scan_iter(match=f"{self.prefix}*", count=1000))

    def queued(self, queue: str = "celery") -> int:
        """Messages waiting in ``queue`` (not those a worker has taken)."""
        with redis.Redis.from_url(self.url) as client:
            return int(client.llen(f"{self.prefix}{queue}"))

    def clear(self) -> None:
        """Delete this run's keys (queues, bindings, unacked messages); nobody else's."""
        keys = self.keys()
        if keys:
            with redis.Redis.from_url(self.url) as client:
                client.delete(*keys)
