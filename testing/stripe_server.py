"""A ``FakeStripe`` served over HTTP on 127.0.0.1, for every process that is pointed at it
(``STRIPE_API_BASE``): the demo's web server and workers share one Stripe, and a test's fake
outlives a worker killed mid-sync. A test can also stop a request after Stripe applied it and
before the caller hears the answer (the worst moment to die)."""

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .stripe_fake import FakeStripe


class StripeServer:
    def __init__(self, fake: FakeStripe | None = None) -> None:
        # ``fake``: e.g. one whose state is kept in Redis (``RedisStore``) and outlives us.
        self.fake = fake or FakeStripe()
        self.held = threading.Event()  # a request was applied and its answer is held back
        self.release = threading.Event()
        self._hold: tuple[str, re.Pattern[str], int] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = f"http://stripe{self.path}"
                text, status, headers = server.fake.handle(
                    method, url, dict(self.headers), body or None
                )
                if server._should_hold(method, self.path.split("?")[0]):
                    server.held.set()
                    server.release.wait(60)
                try:
                    payload = text.encode()
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client was killed while we held its answer

            def do_GET(self) -> None:  # noqa: N802
                self._serve("get")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("post")

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def hold(self, method: str, path: str, nth: int) -> None:
        """Apply the ``nth`` request matching (method, path regex), then hold its answer until
        ``release`` is set."""
        self._hold = (method, re.compile(path), nth)

    def _should_hold(self, method: str, path: str) -> bool:
        with self.fake._lock:
            if self._hold is None or method != self._hold[0] or not self._hold[1].search(path):
                return False
            method_, pattern, nth = self._hold
            self._hold = None if nth == 1 else (method_, pattern, nth - 1)
            return nth == 1

    def __enter__(self) -> "StripeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
