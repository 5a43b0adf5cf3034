"""A real HTTP server on 127.0.0.1 that receives webhooks: it records every request
(headers, body, when) and answers the status codes it is told to, in order."""

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .waiting import DEFAULT_TIMEOUT, wait_until


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Receiver:
    """``statuses`` are answered in order; the last one repeats."""

    server: ThreadingHTTPServer
    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/tessera"

    def answer(self, *statuses: int) -> None:
        with self.lock:
            self.statuses = list(statuses)

    def wait_for(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Received]:
        """The requests received so far, once there are at least ``count`` of them; an
        AssertionError after ``timeout`` seconds (``tests.support.waiting``)."""

        def received() -> list[Received]:
            with self.lock:
                return list(self.requests) if len(self.requests) >= count else []

        requests = wait_until(received, timeout=timeout)
        if not requests:
            raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
        return requests


def serve() -> Generator[Receiver, None, None]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, dict(self.headers.items()), body, time.monotonic())
                )
                status = (
                    receiver.statuses.pop(0)
                    if len(receiver.statuses) > 1
                    else (receiver.statuses[0])
                )
            payload = b'{"ok": true}' if status < 300 else b'{"error": "not today"}'
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
