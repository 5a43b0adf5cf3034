"""Waiting on a condition with a deadline: the one way tests wait for another process."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Generous: a deadline only bounds a hang, it never paces a test. A loaded machine (other
# checkouts testing beside this one) makes real workers and servers slow, not wrong.
DEFAULT_TIMEOUT = 120.0


def wait_until(
    predicate: Callable[[], T], *, timeout: float = DEFAULT_TIMEOUT, interval: float = 0.05
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; after ``timeout``
    seconds return its last (falsy) answer, so that ``assert wait_until(...)`` fails with it.

    The first check is immediate and the last one happens at the deadline, so a condition that
    holds when time is up still counts. ``interval`` is the pause between checks, not a pace:
    it only keeps the poll from spinning a CPU the other processes need."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
