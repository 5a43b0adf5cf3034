"""Delivers the spool to ``POST /api/v1/events``: batched, with backoff and jitter.

At-least-once: an event leaves the spool only after a 202 that counted it accepted or a
duplicate; the API's (org, source, id) dedup turns resends into exactly-once billing. An event the
202 lists as rejected is moved aside with its reasons and never resent (resending the same
content cannot change the answer).
"""

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .spool import Spool, Spooled
from .telemetry import Telemetry

log = logging.getLogger("tessera.collectors.sender")

BATCH_TYPE = "application/cloudevents-batch+json"
MAX_BATCH = 10_000
MAX_BODY = 10 * 1024 * 1024


@dataclass
class SendResult:
    delivered: int = 0
    rejected: int = 0
    ok: bool = True


class Sender:
    def __init__(
        self,
        *,
        spool: Spool,
        api_url: str,
        api_key: str,
        telemetry: Telemetry,
        batch_size: int = 1000,
        timeout: float = 30.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        client: httpx.Client | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.spool = spool
        self.url = api_url.rstrip("/") + "/api/v1/events"
        self.telemetry = telemetry
        self.batch_size = min(batch_size, MAX_BATCH)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.client = client or httpx.Client(timeout=timeout)
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": BATCH_TYPE}
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.failures = 0
        self.not_before = 0.0
        self.last_error: str | None = None

    def ready(self) -> bool:
        return self.monotonic() >= self.not_before

    def flush(self, max_batches: int | None = None) -> SendResult:
        """Send batches until the spool is empty, a send fails, or ``max_batches`` is reached."""
        total = SendResult()
        batches = 0
        while self.ready() and (max_batches is None or batches < max_batches):
            items = self.spool.batch(self.batch_size)
            if not items:
                break
            result = self._send(items)
            batches += 1
            total.delivered += result.delivered
            total.rejected += result.rejected
            if not result.ok:
                total.ok = False
                break
        self.telemetry.spool_depth.set(self.spool.pending())
        return total

    def drain(self, deadline_s: float, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Keep flushing (sleeping through backoff) until empty or ``deadline_s`` passes."""
        end = self.monotonic() + deadline_s
        while self.spool.pending():
            if self.monotonic() >= end:
                return False
            if not self.ready():
                sleep(max(0.0, min(self.not_before, end) - self.monotonic()))
                continue
            self.flush()
        return True

    def _send(self, items: list[Spooled]) -> SendResult:
        body = ("[" + ",".join(item.body for item in items) + "]").encode()
        if len(body) > MAX_BODY and len(items) > 1:
            return self._split(items)
        self.spool.count_attempt(items)
        try:
            response = self.client.post(self.url, content=body, headers=self.headers)
        except httpx.HTTPError as exc:
            return self._retry_later(f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if status == 202:
            return self._settle(items, response)
        if status == 413 and len(items) > 1:
            self.batch_size = max(1, len(items) // 2)
            log.warning("413 for %d events; batches are now %d", len(items), self.batch_size)
            return SendResult(ok=True)
        if status == 429:
            return self._retry_later("429 Too Many Requests", _retry_after(response))
        if status in (401, 403):
            # The key is wrong or revoked: nothing is dropped; an operator must fix the key.
            log.error("the API refused the collector key (%d): %s", status, response.text[:300])
            return self._retry_later(f"{status} key refused")
        if status >= 500 or status in (408, 409):
            return self._retry_later(f"{status} {response.text[:200]}")
        # Another 4xx is about the whole body; with one event it is that event's fault.
        if len(items) == 1:
            reasons = [f"HTTP {status}: {response.text[:500]}"]
            self.spool.settle([], [(items[0], reasons)])
            self._log_rejected(items[0], reasons)
            self.telemetry.events_rejected.inc()
            return SendResult(rejected=1)
        return self._split(items)

    def _split(self, items: list[Spooled]) -> SendResult:
        self.batch_size = max(1, len(items) // 2)
        return SendResult(ok=True)

    def _settle(self, items: list[Spooled], response: httpx.Response) -> SendResult:
        try:
            answer = response.json()
            errors = {int(e["index"]): list(e.get("reasons") or []) for e in answer["errors"]}
        except (ValueError, KeyError, TypeError) as exc:
            return self._retry_later(f"unreadable 202 body: {exc}")
        rejected = [(items[i], errors[i]) for i in sorted(errors) if 0 <= i < len(items)]
        refused = {i for i in errors}
        delivered = [item for i, item in enumerate(items) if i not in refused]
        self.spool.settle(delivered, rejected)
        for item, reasons in rejected:
            self._log_rejected(item, reasons)
        self.failures = 0
        self.not_before = 0.0
        self.last_error = None
        self.telemetry.events_sent.inc(len(delivered))
        self.telemetry.events_rejected.inc(len(rejected))
        self.telemetry.last_send.set(time.time())
        log.info(
            "sent %d events: %s accepted, %s duplicates, %d rejected",
            len(items),
            answer.get("accepted"),
            answer.get("duplicates"),
            len(rejected),
        )
        return SendResult(delivered=len(delivered), rejected=len(rejected))

    def _retry_later(self, error: str, retry_after: float | None = None) -> SendResult:
        self.failures += 1
        # Full jitter: a fleet of collectors that lost the API together does not return together.
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(self.failures - 1, 30))
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        self.not_before = self.monotonic() + delay
        self.last_error = error
        self.telemetry.send_failures.inc()
        log.warning("send failed (%s); attempt %d, retrying in %.1fs", error, self.failures, delay)
        return SendResult(ok=False)

    @staticmethod
    def _log_rejected(item: Spooled, reasons: list[str]) -> None:
        log.error("event %s rejected and kept aside: %s", item.event_id, "; ".join(reasons))


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def event_bodies(items: list[Spooled]) -> list[dict[str, Any]]:
    return [json.loads(item.body) for item in items]
