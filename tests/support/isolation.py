"""What one test run owns on the shared servers, so that runs from two checkouts on one
machine (or two runs of one checkout) never meet: a run id, the PostgreSQL test database named
after it, and the Redis key prefix of its real-worker tests (``tests.support.broker``).

``bin/test`` sets ``TESSERA_TEST_RUN_ID`` and, however pytest ends, drops what is left with
``python -m tests.support.isolation drop``; a plain ``pytest`` makes an id up. Subprocesses
inherit it through the environment. No Django here: ``bin/test`` runs this before and after."""

import os
import re
import secrets
import sys

RUN_ID_VARIABLE = "TESSERA_TEST_RUN_ID"
POSTGRES_NAME_MAX = 63  # NAMEDATALEN - 1


def run_id() -> str:
    """This run's id: 1-24 of a-z, 0-9 and ``_`` (it goes into identifiers and key names)."""
    value = os.environ.get(RUN_ID_VARIABLE, "")
    if not value:
        value = f"{os.getpid()}_{secrets.token_hex(3)}"
        os.environ[RUN_ID_VARIABLE] = value
    if not re.fullmatch(r"[a-z0-9_]{1,24}", value):
        raise ValueError(f"{RUN_ID_VARIABLE}={value!r}: use 1-24 of a-z, 0-9 and _")
    return value


def run_database_name(name: str) -> str:
    """``name`` (pytest-django's ``test_<NAME>``) with ``_<run id>`` appended, cut to
    PostgreSQL's 63 characters without losing the run id."""
    suffix = f"_{run_id()}"
    return name[: POSTGRES_NAME_MAX - len(suffix)] + suffix


def drop_databases(database_url: str) -> list[str]:
    """Drop every database of this run on the server of ``database_url``: the ones a run
    killed before pytest-django's teardown leaves behind. Returns their names."""
    import psycopg

    server = re.sub(r"^postgres(ql)?://", "postgresql://", database_url).rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=10) as conn:
        names = [
            name
            for (name,) in conn.execute("SELECT datname FROM pg_database").fetchall()
            if name.startswith("test_") and name.endswith(f"_{run_id()}")
        ]
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return names


if __name__ == "__main__":
    if sys.argv[1:] != ["drop"]:
        raise SystemExit("usage: python -m tests.support.isolation drop")
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        for dropped in drop_databases(url):
            print(f"dropped {dropped}, left by this run")  # noqa: T201
