"""The parts every catalog section is made of: its error, the run's context, the section
itself and the upsert by natural key. Sections (``sections``, ``rate_cards``, ``contracts``)
import this module; ``loader`` imports the sections and runs them in dependency order."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model

from core.errors import DomainError, ErrorCode, ErrorKind

from ..models import Product
from .entries import Entry


class CatalogError(DomainError):
    """The file is invalid; ``errors`` names each entry and field. Nothing was written."""

    codes = {
        "catalog_invalid": ErrorCode(
            ErrorKind.INVALID, "The catalog is invalid; each entry and field is named."
        )
    }

    def __init__(self, errors: list[str]) -> None:
        super().__init__("catalog_invalid", "\n".join(errors), {"catalog": errors})
        self.errors = errors


@dataclass
class LoadReport:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    # What loaded but deserves a look (an issuer without the legal details its documents
    # need), each naming the entry and the field.
    warnings: list[str] = field(default_factory=list)

    def count(self, section: str, outcome: str) -> None:
        bucket = getattr(self, outcome)
        bucket[section] = bucket.get(section, 0) + 1

    def lines(self) -> list[str]:
        sections = list(dict.fromkeys([*self.created, *self.updated, *self.unchanged]))
        return [
            f"{name}: {self.created.get(name, 0)} created, {self.updated.get(name, 0)} updated, "
            f"{self.unchanged.get(name, 0)} unchanged"
            for name in sections
        ]


@dataclass
class Context:
    """What validation knows: the parsed entries of the sections read so far."""

    errors: list[str] = field(default_factory=list)
    parsed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def keys(self, section: str, key: str = "key") -> set[str]:
        return {p[key] for p in self.parsed.get(section, []) if p.get(key)}


@dataclass(frozen=True)
class Section:
    name: str
    # Reads one entry into plain values, reporting errors through the entry and the context.
    parse: Callable[[Entry, Context], dict[str, Any] | None]
    # Writes one parsed entry; returns its row and "created", "updated" or "unchanged".
    apply: Callable[[dict[str, Any]], tuple[Model, str]]
    natural_key: tuple[str, ...] = ("key",)


def upsert(model: Any, lookup: dict[str, Any], values: dict[str, Any]) -> tuple[Any, str]:
    """Create or update one row by its natural key; report whether anything changed."""
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        return model.objects.create(**lookup, **values), "created"
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    if not changed:
        return obj, "unchanged"
    for name in changed:
        setattr(obj, name, values[name])
    obj.save(update_fields=changed)
    return obj, "updated"


def product_known(entry: Entry, ctx: Context, field: str, key: Any) -> None:
    """Report ``key`` unless a product of that key is in this file or the database."""
    if key and key not in ctx.keys("products") and not Product.objects.filter(key=key).exists():
        entry.error(field, f"no product {key!r} in this file or the database")
