"""Real processes for the database-fault and load tests: a throwaway PostgreSQL cluster of
the test's own (never the shared server, which other tests use) and gunicorn serving Tessera."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from ..support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def have_postgres_binaries() -> bool:
    return PG_BIN is not None and (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnPostgres:
    """``initdb`` + ``pg_ctl`` in a temporary directory on a free port (as ``postgres`` when
    we are root, since initdb refuses root)."""

    def __init__(self) -> None:
        assert PG_BIN is not None
        # Not under pytest's tmp_path: the postgres user must be able to reach it.
        self.dir = directory = Path(tempfile.mkdtemp(prefix="tessera-pg-"))
        self.data = directory / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        assert PG_BIN is not None
        command = [str(PG_BIN / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.dir)

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                  "-w", action, *extra)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def create(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def manage(database_url: str, *args: str, var_dir: Path) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "TESSERA_VAR_DIR": str(var_dir)}
    env.pop("CELERY_BROKER_URL", None)
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


class Server:
    """gunicorn serving Tessera on ``database_url``; rollups and rating are left to the test."""

    def __init__(self, database_url: str, *, workers: int, var_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TESSERA_VAR_DIR": str(var_dir),
            "TESSERA_ROLLUP_ON_INGEST": "0",
            "TESSERA_INGEST_RATE": "1000000/min",
            "LOG_LEVEL": "WARNING",
            # Production settings, plain HTTP on loopback.
            "DEBUG": "false",
            "SECRET_KEY": "reliability-" + "k" * 50,
            "ALLOWED_HOSTS": "127.0.0.1",
            "TESSERA_SSL_REDIRECT": "false",
            **env,
        }
        full.pop("CELERY_BROKER_URL", None)
        command = [sys.executable, "-m", "gunicorn", "config.wsgi", "-w", str(workers)]
        command += ["-b", f"127.0.0.1:{self.port}", "--timeout", "120", "--log-level", "warning"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=full)
        if not wait_until(self.healthy, interval=0.2):
            self.close()
            raise RuntimeError("gunicorn did not come up")

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
