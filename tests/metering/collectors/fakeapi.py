"""A tiny stand-in for Tessera's ingestion and allocations API, implementing their contract.

``POST /api/v1/events``: Bearer key, a JSON array, 202 with accepted / duplicates / rejected and
per-index errors; dedup on (subject, source, id): an identical resend is a duplicate, the same id
with other content is rejected. ``GET /api/v1/allocations``: the node's allocations overlapping
[start, end). It can be taken down (connection refused is simulated by 503s or by stopping it),
answer 429, and reject chosen events.
"""

import json
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

KEY = "test-collector-key"


class FakeApi:
    def __init__(self, port: int = 0) -> None:
        self.events: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.allocations: list[dict[str, Any]] = []
        self.requests = 0
        self.posts = 0
        self.duplicates = 0
        self.rejections: list[dict[str, Any]] = []
        self.down = False  # answer 503 to everything
        self.throttle = 0  # answer 429 to the next N requests
        self.reject_if: Callable[[dict[str, Any]], list[str]] = lambda event: []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeApi":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            def _gate(self) -> bool:
                with api.lock:
                    api.requests += 1
                    if api.down:
                        self._reply(503, {"code": "unavailable"})
                        return False
                    if api.throttle:
                        api.throttle -= 1
                        self._reply(429, {"code": "throttled"}, {"Retry-After": "0"})
                        return False
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    self._reply(401, {"code": "not_authenticated"})
                    return False
                return True

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if not self._gate():
                    return
                if urlparse(self.path).path != "/api/v1/events":
                    self._reply(404, {})
                    return
                batch = json.loads(body)
                result: dict[str, Any] = {
                    "accepted": 0,
                    "duplicates": 0,
                    "rejected": 0,
                    "errors": [],
                }
                with api.lock:
                    api.posts += 1
                    for index, event in enumerate(batch):
                        reasons = api.reject_if(event)
                        key = (event["subject"], event["source"], event["id"])
                        stored = api.events.get(key)
                        if not reasons and stored is not None and stored != event:
                            reasons = ["id already used with other content"]
                        if reasons:
                            result["rejected"] += 1
                            result["errors"].append(
                                {"index": index, "id": event.get("id"), "reasons": reasons}
                            )
                            api.rejections.append(event)
                        elif stored is not None:
                            result["duplicates"] += 1
                            api.duplicates += 1
                        else:
                            api.events[key] = event
                            result["accepted"] += 1
                self._reply(202, result)

            def do_GET(self) -> None:  # noqa: N802
                if not self._gate():
                    return
                url = urlparse(self.path)
                if url.path != "/api/v1/allocations":
                    self._reply(404, {})
                    return
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                start = datetime.fromisoformat(query["start"])
                end = datetime.fromisoformat(query["end"])
                results = [
                    a
                    for a in api.allocations
                    if a["node"] == query["node"]
                    and datetime.fromisoformat(a["start"]) < end
                    and (a["end"] is None or datetime.fromisoformat(a["end"]) > start)
                ]
                self._reply(200, {"results": results})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def main() -> None:
    """Run it on a port for trying the collectors by hand."""
    import sys

    api = FakeApi(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    sys.stdout.write(f"{api.url}\n")
    sys.stdout.flush()
    api.server.serve_forever()


if __name__ == "__main__":
    main()
