"""A webhook receiver for the demo: the customer's side of acme's endpoint. It verifies each
message's Standard Webhooks signature with the endpoint's secrets and keeps what it got under
``var/demo/webhooks/`` (one JSON file per message), answering 200."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks import Webhook, WebhookVerificationError


class Sink:
    def __init__(self, directory: Path, secrets: list[str]) -> None:
        self.directory = directory
        self.secrets = secrets
        self.received = 0
        directory.mkdir(parents=True, exist_ok=True)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = dict(self.headers.items())
                verified = any(_verifies(secret, body, headers) for secret in sink.secrets)
                if verified:
                    sink.received += 1
                    name = f"{sink.received:03d}-{json.loads(body)['type']}.json"
                    (sink.directory / name).write_bytes(body)
                self.send_response(200 if verified else 401)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/tessera-webhooks"


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True
