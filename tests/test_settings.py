"""The embedded default database (config/settings/env.py), as ``manage.py`` picks it with no
DATABASE_URL: the operator's own file, else the demo's after ``bin/demo``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def default_database_url(var: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", "from config.settings import env; print(env.DATABASE_URL)"],
        cwd=ROOT, env={**clean, "TESSERA_VAR_DIR": str(var), **env}, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ([], "tessera.sqlite3"),  # a fresh checkout
        (["demo.sqlite3"], "demo.sqlite3"),  # after bin/demo
        (["demo.sqlite3", "tessera.sqlite3"], "tessera.sqlite3"),  # the operator's own wins
        (["tessera.sqlite3"], "tessera.sqlite3"),
    ],
)
def test_the_embedded_default_is_the_demo_database_only_while_there_is_no_other(
    tmp_path, files, expected
):
    for name in files:
        (tmp_path / name).touch()

    assert default_database_url(tmp_path) == f"sqlite:///{tmp_path / expected}"


def test_database_url_always_wins(tmp_path):
    (tmp_path / "demo.sqlite3").touch()

    url = default_database_url(tmp_path, DATABASE_URL="postgres://x@db:5432/tessera")

    assert url == "postgres://x@db:5432/tessera"
