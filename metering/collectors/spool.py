"""A durable local spool: what a collector has measured and not yet delivered.

One SQLite file (WAL) per collector holds three things, changed together in one transaction
wherever they must agree:

- ``outbox``: events waiting to be sent, keyed by event id (a re-spooled id is ignored, so a
  window can never be queued twice);
- ``rejected``: events the API refused, with its reasons, kept for inspection, never resent;
- ``state``: small JSON documents (open windows, file offsets, counter values, gaps).

A collector commits the events of a closed window and the state that says "this window is
closed" in the same transaction, so a ``kill -9`` at any instant leaves either both or neither.
"""

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,          -- the CloudEvent exactly as it will be sent, every time
    spooled_at REAL NOT NULL,    -- unix seconds
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rejected (
    event_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    reasons TEXT NOT NULL,       -- JSON list of the API's reasons
    rejected_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL          -- JSON
);
"""


@dataclass(frozen=True)
class Spooled:
    seq: int
    event_id: str
    body: str


class Spool:
    """Thread-safe; every public method is one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode loses nothing when the process dies (kill -9); only a power loss
        # may drop the last commits, which at-least-once delivery then re-measures or re-reads.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator["Transaction"]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # Reads and single-step writes.
    def get_state(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def state_keys(self, prefix: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key FROM state WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            ).fetchall()
        return [r[0] for r in rows]

    def set_state(self, key: str, value: Any) -> None:
        with self.transaction() as tx:
            tx.set_state(key, value)

    def add(self, events: Iterable[dict[str, Any]]) -> int:
        with self.transaction() as tx:
            return tx.add(events)

    def pending(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def rejected_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM rejected").fetchone()[0])

    def rejected(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body, reasons FROM rejected ORDER BY rejected_at, event_id"
            ).fetchall()
        return [{"event": json.loads(b), "reasons": json.loads(r)} for b, r in rows]

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds the oldest unsent event has waited (0 when the outbox is empty)."""
        with self._lock:
            row = self._db.execute("SELECT min(spooled_at) FROM outbox").fetchone()
        return 0.0 if row[0] is None else max(0.0, (now or time.time()) - row[0])

    def batch(self, limit: int) -> list[Spooled]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, body FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [Spooled(seq, event_id, body) for seq, event_id, body in rows]

    def settle(self, delivered: list[Spooled], rejected: list[tuple[Spooled, list[str]]]) -> None:
        """Drop what the API stored (accepted or duplicate); move what it refused aside."""
        now = time.time()
        with self.transaction() as tx:
            tx.db.executemany("DELETE FROM outbox WHERE seq = ?", [(s.seq,) for s in delivered])
            for item, reasons in rejected:
                tx.db.execute(
                    "INSERT OR REPLACE INTO rejected (event_id, body, reasons, rejected_at) "
                    "VALUES (?, ?, ?, ?)",
                    (item.event_id, item.body, json.dumps(reasons), now),
                )
                tx.db.execute("DELETE FROM outbox WHERE seq = ?", (item.seq,))

    def count_attempt(self, items: list[Spooled]) -> None:
        with self.transaction() as tx:
            tx.db.executemany(
                "UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?",
                [(s.seq,) for s in items],
            )


class Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def add(self, events: Iterable[dict[str, Any]]) -> int:
        """Queue events; an id already queued (or already refused) is ignored. Returns new ones."""
        now = time.time()
        added = 0
        for event in events:
            if self.db.execute(
                "SELECT 1 FROM rejected WHERE event_id = ?", (event["id"],)
            ).fetchone():
                continue
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO outbox (event_id, body, spooled_at) VALUES (?, ?, ?)",
                (event["id"], encode(event), now),
            )
            added += cursor.rowcount
        return added

    def reject(self, event_id: str, body: str, reasons: list[str]) -> None:
        """Keep something unusable aside for inspection (never sent)."""
        self.db.execute(
            "INSERT OR REPLACE INTO rejected (event_id, body, reasons, rejected_at) "
            "VALUES (?, ?, ?, ?)",
            (event_id, body, json.dumps(reasons), time.time()),
        )

    def set_state(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    def get_state(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def delete_state(self, key: str) -> None:
        self.db.execute("DELETE FROM state WHERE key = ?", (key,))


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
