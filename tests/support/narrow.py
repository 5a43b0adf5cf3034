"""Narrowing where an ``assert value is not None`` statement cannot go (a comprehension, an
argument): ``present(value)`` is that assert as an expression."""

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None) -> T:
    """``value`` itself; an AssertionError (the test fails) where it is None."""
    assert value is not None
    return value
