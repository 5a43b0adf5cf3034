"""What the benchmarks share: a scratch PostgreSQL database of their own, the ``--tiny`` switch
(CI runs every benchmark once at that size, in seconds), and figures printed as ratios against
a baseline measured in the same run, so that a figure means the same on a fast and a slow (or
busy) machine."""

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

# The PostgreSQL server (not database) the benchmarks create their databases on.
SERVER = os.environ.get("TESSERA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def add_common_arguments(parser: argparse.ArgumentParser, *, kind: str) -> None:
    parser.add_argument(
        "--tiny", action="store_true", help="a few seconds' worth, to check that it runs (CI)"
    )
    parser.add_argument(
        "--database",
        help=f"PostgreSQL database to use: dropped first and kept afterwards (default: a "
        f"scratch tessera_bench_{kind}_<pid>, dropped afterwards)",
    )


def parse(parser: argparse.ArgumentParser, tiny: dict[str, object]) -> argparse.Namespace:
    """Parse, then apply the ``--tiny`` sizes to every size option left at its default."""
    args = parser.parse_args()
    if args.tiny:
        for name, value in tiny.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    if args.database is not None and not args.database.isidentifier():
        parser.error("--database must be a plain identifier")
    return args


@contextmanager
def scratch_database(kind: str, name: str | None = None) -> Iterator[str]:
    """A fresh database on ``SERVER``; yields its URL (``postgres://``, as settings take it)."""
    database = name or f"tessera_bench_{kind}_{os.getpid()}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    try:
        yield f"{SERVER}/{database}".replace("postgresql://", "postgres://", 1)
    finally:
        if name is None:
            with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def psycopg_url(database_url: str) -> str:
    return database_url.replace("postgres://", "postgresql://", 1)


def versus(value: float, baseline: float) -> str:
    """``value`` as a multiple of ``baseline`` (both in the same unit)."""
    return f"{value / baseline:6.2f}× the baseline" if baseline else "   n/a (baseline 0)"


def banner(title: str, baseline: str) -> None:
    print(title)
    print(f"baseline (same run): {baseline}")
