"""The one error model of Tessera's domain (HackSoft ``core/exceptions.py``).

Domain code raises a ``DomainError`` subclass with a stable ``code``, a ``message`` for a
person and, for bad input, ``fields``: each offending input with its messages. Each subclass
declares the codes it raises and what kind of refusal each is; ``config.errors`` maps the
kind to an HTTP status once, and lists every code in the OpenAPI schema. Views never catch
domain errors one by one.

Plain Python: imports nothing from Django or any Tessera app, so every app can use it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class ErrorKind(StrEnum):
    """What kind of refusal a code is (``config.errors`` maps each to an HTTP status)."""

    INVALID = "invalid"  # the request is wrong whatever the state of the data
    FORBIDDEN = "forbidden"  # the caller may not do this
    NOT_FOUND = "not_found"  # no such thing (or not one the caller may see)
    CONFLICT = "conflict"  # refused in the current state of the data


@dataclass(frozen=True)
class ErrorCode:
    kind: ErrorKind
    meaning: str


class DomainError(Exception):
    """A request the domain rules refuse.

    ``code``: stable, machine-readable, one of the class's ``codes``; ``message``: what is
    wrong, for a person; ``fields``: each offending input (dotted path) with its messages."""

    codes: ClassVar[Mapping[str, ErrorCode]] = {}

    def __init__(
        self, code: str, message: str, fields: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields: dict[str, list[str]] = {k: list(v) for k, v in (fields or {}).items()}

    @property
    def kind(self) -> ErrorKind:
        declared = self.codes.get(self.code)
        return declared.kind if declared else ErrorKind.INVALID


def domain_error_classes() -> list[type[DomainError]]:
    """Every ``DomainError`` subclass defined so far (the apps' modules are imported by the
    URLconf, so all of them once Django has loaded its URLs)."""
    found: list[type[DomainError]] = []
    pending = list(DomainError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        if cls not in found:
            found.append(cls)
            pending += cls.__subclasses__()
    return found


def domain_error_codes() -> dict[str, ErrorCode]:
    """Every declared code, by code (a code two classes share means the same everywhere)."""
    return {code: c for cls in domain_error_classes() for code, c in cls.codes.items()}
