"""The compose proxy for real: nginx with deploy/nginx.conf in front of one sync gunicorn
worker. A client that sends its request body slowly holds that worker when it talks to
gunicorn directly (every other request waits); through nginx, which reads the whole body before
passing the request on, the API keeps answering. Skipped where nginx is not installed (CI
installs Debian's nginx-light)."""

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .reliability.servers import Server, free_port
from .support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Server]:
    """One sync worker (what /healthz and the login form's CSRF check touch needs no database)."""
    server = Server(f"sqlite:///{tmp_path / 'unused.sqlite3'}", workers=1, var_dir=tmp_path)
    yield server
    server.close()


@pytest.fixture
def proxy(tmp_path: Path, gunicorn: Server) -> Iterator[str]:
    """deploy/nginx.conf as compose mounts it, its upstream pointed at ``gunicorn``."""
    port = free_port()
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    for compose, here in (("server web:8000;", f"server 127.0.0.1:{gunicorn.port};"),
                          ("listen 8080;", f"listen 127.0.0.1:{port};")):  # fmt: skip
        assert compose in site
        site = site.replace(compose, here)
    (tmp_path / "site.conf").write_text(site)
    temp = " ".join(f"{kind}_temp_path {tmp_path / kind};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
    (tmp_path / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off; pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'} warn;\n"
        + "events { worker_connections 64; }\n"
        + f"http {{ access_log off; {temp} include {tmp_path / 'site.conf'}; }}\n"
    )
    assert NGINX is not None
    proc = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c",
         str(tmp_path / "nginx.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/nginx-health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # exited: stop waiting, the assert says why

    assert wait_until(up), (tmp_path / "error.log").read_text()
    assert proc.poll() is None, (tmp_path / "error.log").read_text()
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def start_slow_upload(url: str) -> socket.socket:
    """A login form posted slowly: headers and a tenth of the body, the rest when the test
    says. Django reads the body (the CSRF check looks into the form) before it can answer."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    sock.sendall(
        b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Cookie: csrftoken=" + b"a" * 32 + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n"
        + b"username="
        + b"x" * 991
    )
    return sock


def finish_slow_upload(sock: socket.socket) -> bytes:
    sock.sendall(b"x" * 9000)
    answer = sock.recv(200)
    sock.close()
    return answer


def test_a_slow_client_holds_the_only_sync_worker_without_the_proxy(gunicorn):
    slow = start_slow_upload(gunicorn.url)
    try:
        # the worker is reading the slow body: nobody else is served meanwhile
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{gunicorn.url}/healthz", timeout=3)
    finally:
        answer = finish_slow_upload(slow)
    assert answer.startswith(b"HTTP/1.1 403")  # no CSRF token in the form, once it was read


def test_through_the_proxy_the_api_answers_while_a_slow_client_uploads(proxy):
    slow = start_slow_upload(proxy)
    try:
        # nginx holds the partial body; the one worker is free for everyone else
        answers = [httpx.get(f"{proxy}/healthz", timeout=60).status_code for _ in range(3)]
    finally:
        answer = finish_slow_upload(slow)

    assert answers == [200, 200, 200]
    assert answer.startswith(b"HTTP/1.1 403")  # and the slow request, complete, went through
