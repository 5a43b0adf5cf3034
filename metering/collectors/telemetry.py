"""The collector's own health: Prometheus metrics and ``/healthz`` on a small http.server."""

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

log = logging.getLogger("tessera.collectors.health")


class Telemetry:
    """Metrics in a registry of their own (a process may run several collectors in tests)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.registry = CollectorRegistry()
        r = self.registry
        self.spool_depth = Gauge(
            "collector_spool_events", "Events waiting in the spool", registry=r
        )
        self.events_spooled = Counter(
            "collector_events_spooled", "Events written to the spool", registry=r
        )
        self.events_sent = Counter(
            "collector_events_delivered",
            "Events the API stored (accepted or duplicate)",
            registry=r,
        )
        self.events_rejected = Counter(
            "collector_events_rejected", "Events the API refused (kept aside)", registry=r
        )
        self.send_failures = Counter(
            "collector_send_failures", "Sends that failed and will be retried", registry=r
        )
        self.last_send = Gauge(
            "collector_last_delivery_timestamp_seconds", "Last successful send", registry=r
        )
        self.gaps = Counter("collector_gaps", "Gaps in the collector's own operation", registry=r)
        self.gap_seconds = Counter(
            "collector_gap_seconds", "Seconds the collector did not observe", registry=r
        )
        self.errors = Counter("collector_errors", "Errors reading the source", ["kind"], registry=r)
        # GPU collector.
        self.samples = Counter("gpu_collector_samples", "NVML sampling rounds", registry=r)
        self.windows = Counter("gpu_collector_windows_closed", "Windows closed", registry=r)
        self.idle_gpu_seconds = Counter(
            "gpu_collector_idle_gpu_seconds",
            "Unallocated capacity observed, GPU-seconds (MIG slices weighted by fraction)",
            registry=r,
        )
        self.unbillable_gpu_seconds = Counter(
            "gpu_collector_unbillable_gpu_seconds",
            "Allocated GPU-seconds not billed because the device was unhealthy",
            ["reason"],
            registry=r,
        )
        self.conflicts = Counter(
            "gpu_collector_allocation_conflicts",
            "Overlapping claims on one device by different orgs, refused (never billed twice)",
            registry=r,
        )
        self.conflict_gpu_seconds = Counter(
            "gpu_collector_allocation_conflict_gpu_seconds",
            "GPU-seconds claimed by more than one org (MIG slices weighted by fraction)",
            registry=r,
        )
        self.unattributed = Gauge(
            "gpu_collector_unattributed_claims",
            "Devices held (pod, job) by no known org at the last observation: not billed",
            registry=r,
        )
        self.devices = Gauge("gpu_collector_devices", "GPUs and MIG instances seen", registry=r)
        self.unhealthy = Gauge(
            "gpu_collector_unhealthy_devices", "Devices unhealthy in the last sample", registry=r
        )
        # Token collector.
        self.tokens = Counter("token_collector_tokens", "Tokens spooled", ["direction"], registry=r)
        self.scrapes = Counter("token_collector_scrapes", "Scrapes", ["result"], registry=r)
        self.counter_resets = Counter(
            "token_collector_counter_resets", "Counter resets seen in scraped metrics", registry=r
        )
        self.lines = Counter("token_collector_log_lines", "Log lines read", ["result"], registry=r)
        self.status: dict[str, Any] = {"kind": kind, "started_at": time.time()}
        self.problems: dict[str, str] = {}

    def problem(self, key: str, message: str | None) -> None:
        """Set (or clear, with None) a named reason why the collector is not healthy."""
        if message is None:
            self.problems.pop(key, None)
        else:
            self.problems[key] = message

    def health(self) -> dict[str, Any]:
        return {**self.status, "healthy": not self.problems, "problems": dict(self.problems)}

    def serve(
        self, port: int, host: str = "0.0.0.0", extra: Callable[[], dict[str, Any]] | None = None
    ) -> ThreadingHTTPServer:
        telemetry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] == "/metrics":
                    self._reply(200, generate_latest(telemetry.registry), CONTENT_TYPE_LATEST)
                elif self.path.split("?")[0] == "/healthz":
                    body = telemetry.health()
                    if extra:
                        body.update(extra())
                    code = 200 if body["healthy"] else 503
                    self._reply(code, json.dumps(body, default=str).encode(), "application/json")
                else:
                    self._reply(404, b"not found\n", "text/plain")

            def _reply(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health: " + format, *args)

        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
        log.info("health on http://%s:%d/healthz and /metrics", host, server.server_address[1])
        return server
