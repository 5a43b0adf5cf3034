"""PostgreSQL restarts while collectors are sending: a client gets an error or a 202, never a
202 for events that were not stored; the collectors' sender resends and nothing is lost.

Runs against a throwaway cluster of its own (``servers.OwnPostgres``), restarted with
``pg_ctl restart -m fast`` (which ends every session, rolling back what is in flight) and
also stopped for a second, while gunicorn serves the real ingestion API."""

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from metering.collectors.sender import BATCH_TYPE, Sender
from metering.collectors.spool import Spool
from metering.collectors.telemetry import Telemetry

from ..support.waiting import wait_until
from .servers import OwnPostgres, Server, have_postgres_binaries, manage

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not have_postgres_binaries(), reason="no initdb/pg_ctl on this machine"),
]

ORGS = ["acme", "globex", "initech"]
CATALOG = {
    "meters": [{"key": "gpu_time", "event_type": "gpu.usage", "value": "$.gpu_seconds",
                "aggregation": "sum", "group_by": {"gpu_model": "$.gpu_model"}}],
    "orgs": [{"slug": s, "name": s, "country": "FR", "currency": "USD"} for s in ORGS],
}  # fmt: skip


def events(source: str, count: int, *, start: int = 0) -> list[dict[str, Any]]:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    return [
        {"specversion": "1.0", "id": f"{source}-{i}", "source": source, "type": "gpu.usage",
         "subject": ORGS[i % len(ORGS)],
         "time": (base + timedelta(seconds=i % 10_000)).isoformat().replace("+00:00", "Z"),
         "data": {"gpu_seconds": str(i % 7 + 1), "gpu_model": "H100"}}
        for i in range(start, start + count)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """One cluster, schema and server for the module (each test uses its own event sources)."""
    tmp_path = tmp_path_factory.mktemp("stack")
    pg = OwnPostgres()
    try:
        url = pg.create("tessera")
        var = tmp_path / "var"
        manage(url, "migrate", "--no-input", var_dir=var)
        (tmp_path / "catalog.json").write_text(json.dumps(CATALOG))
        manage(url, "load_catalog", str(tmp_path / "catalog.json"), var_dir=var)
        key = manage(url, "create_api_key", "--collector", "fault", var_dir=var).split()[-1]
        server = Server(url, workers=3, var_dir=var)
        try:
            yield pg, url, server, key, var
        finally:
            server.close()
    finally:
        pg.close()


class RawClient(threading.Thread):
    """Posts new batches until told to stop, each until it gets a 202, and remembers every
    answer and every id a 202 acknowledged."""

    def __init__(self, url: str, key: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url + "/api/v1/events", stop
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": BATCH_TYPE}
        self.answers: Counter[str] = Counter()
        self.sent: list[dict[str, Any]] = []
        self.acknowledged: set[str] = set()  # ids a 202 counted accepted or duplicate

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                batch = events("raw", 200, start=len(self.sent))
                self.sent += batch
                while not self._post(client, batch):
                    time.sleep(0.05)  # a client's backoff before it resends, not a wait

    def _post(self, client: httpx.Client, batch: list[dict[str, Any]]) -> bool:
        try:
            response = client.post(self.url, json=batch, headers=self.headers)
        except httpx.HTTPError as exc:
            self.answers[type(exc).__name__] += 1
            return False
        self.answers[str(response.status_code)] += 1
        if response.status_code != 202:
            assert response.status_code >= 500, response.text
            assert response.json()["code"], response.text  # a JSON error, as the API promises
            return False
        body = response.json()
        refused = {e["index"] for e in body["errors"]}
        assert body["accepted"] + body["duplicates"] == len(batch) - len(refused)
        self.acknowledged |= {e["id"] for i, e in enumerate(batch) if i not in refused}
        return True


class Collector(threading.Thread):
    """A collector: produces a batch of events into its durable spool every tick while the
    sender delivers; when told to stop, drains the spool."""

    def __init__(self, server: Server, key: str, spool: Spool, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.spool, self.stop = spool, stop
        self.sender = Sender(spool=spool, api_url=server.url, api_key=key,
                             telemetry=Telemetry("gpu"), batch_size=200, backoff_base=0.05,
                             backoff_cap=0.5)  # fmt: skip
        self.produced = 0
        self.drained = False

    def run(self) -> None:
        while not self.stop.is_set():
            self.produced += self.spool.add(events("collector", 100, start=self.produced))
            if self.sender.ready():
                self.sender.flush(max_batches=2)
            self.stop.wait(0.02)  # the next tick
        self.drained = self.sender.drain(120)


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as db:
        return db.execute(sql).fetchall()


def test_postgres_restarts_during_ingestion_lose_nothing(stack, tmp_path):
    pg, url, server, key, var = stack
    stop = threading.Event()
    raw = RawClient(server.url, key, stop)
    spool = Spool(tmp_path / "spool.sqlite3")
    collector = Collector(server, key, spool, stop)

    def one_more_batch_stored() -> bool:
        served = raw.answers["202"]
        return bool(wait_until(lambda: raw.answers["202"] > served))

    def failed() -> int:
        return sum(n for answer, n in raw.answers.items() if answer != "202")

    raw.start()
    collector.start()
    # Each restart lands on flowing traffic: a batch was stored since the last one.
    for _ in range(4):
        assert one_more_batch_stored()
        pg.restart("fast")
    assert one_more_batch_stored()
    pg.stop("fast")
    # Down until both clients have met the outage, then up until traffic flows again.
    failures, sender_failures = failed(), collector.sender.failures
    assert wait_until(lambda: failed() > failures and collector.sender.failures > sender_failures)
    pg.start()
    assert one_more_batch_stored()
    stop.set()
    raw.join(120)
    collector.join(120)

    assert collector.drained
    assert (spool.pending(), spool.rejected_count()) == (0, 0)
    assert sum(n for answer, n in raw.answers.items() if answer != "202") > 0, raw.answers
    raw_stored = {i for (i,) in query(url, "SELECT event_id FROM metering_usageevent "
                                           "WHERE source = 'raw'")}  # fmt: skip
    # Every 202 told the truth; the resends filled in the rest: every event, once.
    assert raw.acknowledged <= raw_stored
    stored = dict(query(url, "SELECT source, count(*) FROM metering_usageevent GROUP BY 1"))
    assert stored == {"raw": len(raw.sent), "collector": collector.produced}
    print(f"\nraw client answers: {dict(raw.answers)}; stored {stored}")  # noqa: T201

    manage(url, "rollup", var_dir=var)
    [(rolled,)] = query(url, "SELECT sum(value) FROM metering_hourlyrollup")
    assert rolled == sum(i % 7 + 1 for i in range(len(raw.sent))) + sum(
        i % 7 + 1 for i in range(collector.produced)
    )


def test_after_a_restart_the_first_requests_are_served_not_failed(stack):
    """Persistent connections died with the old server: each worker must notice and reconnect
    instead of failing its next request with a 500 while PostgreSQL is up."""
    pg, url, server, key, var = stack
    headers = {"Authorization": f"Bearer {key}", "Content-Type": BATCH_TYPE}
    with httpx.Client(timeout=30) as client:
        for i in range(6):  # every gunicorn worker holds a connection now
            client.post(server.url + "/api/v1/events", json=events(f"warm{i}", 1), headers=headers)
        pg.restart("fast")
        answers = [
            client.post(server.url + "/api/v1/events", json=events(f"after{i}", 1),
                        headers=headers).status_code
            for i in range(9)
        ]  # fmt: skip

    assert answers == [202] * 9
