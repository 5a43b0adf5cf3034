import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from core.errors import DomainError, ErrorCode, ErrorKind

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

    def keys(self, section: str, key: str = "key") -> set[str]:
        return {p[key] for p in self.parsed.get(section, []) if p.get(key)}


@dataclass(frozen=True)
class Section:
    name: str
    # Reads one entry into plain values, reporting errors through the entry and the context.
    parse: Callable[[Entry, Context], dict[str, Any] | None]
    # Writes one parsed entry; returns "created", "updated" or "unchanged".
    apply: Callable[[dict[str, Any]], str]
    natural_key: tuple[str, ...] = ("key",)


SECTIONS: list[Section] = []


def register_section(section: Section, *, after: str | None = None) -> None:
    """Add a section; ``after`` places it behind the section it depends on."""
    if any(s.name == section.name for s in SECTIONS):
        return
    if after is None:
        SECTIONS.append(section)
    else:
        position = next(i for i, s in enumerate(SECTIONS) if s.name == after)
        SECTIONS.insert(position + 1, section)


def load_catalog(document: Any, *, actor: str = "load_catalog") -> LoadReport:
    """Validate the whole document, then upsert every entry in one transaction."""
    from . import sections  # noqa: F401 - registers the built-in sections

    ctx = Context()
    if not isinstance(document, dict):
        raise CatalogError(["the file must hold a mapping of sections (issuers, meters, ...)"])
    known = [s.name for s in SECTIONS]
    for name in document:
        if name not in known:
            ctx.errors.append(f"{name}: unknown section; known sections are {', '.join(known)}")
    for section in SECTIONS:
        raw = document.get(section.name) or []
        if not isinstance(raw, list):
            ctx.errors.append(f"{section.name}: must be a list of entries")
            continue
        parsed: list[dict[str, Any]] = []
        seen: set[tuple[Any, ...]] = set()
        for index, item in enumerate(raw):
            entry = Entry(section.name, index, item, ctx.errors)
            value = section.parse(entry, ctx) if isinstance(item, dict) else None
            entry.finish()
            if value is None:
                continue
            natural = tuple(value.get(k) for k in section.natural_key)
            if natural in seen:
                entry.error(None, f"duplicate entry for {', '.join(map(str, natural))}")
                continue
            seen.add(natural)
            parsed.append(value)
        ctx.parsed[section.name] = parsed
    if ctx.errors:
        raise CatalogError(ctx.errors)
    report = LoadReport()
    with transaction.atomic():
        for section in SECTIONS:
            for value in ctx.parsed.get(section.name, []):
                outcome = section.apply(value)
                report.count(section.name, outcome)
                if outcome != "unchanged":
                    _audit(section, value, outcome, actor)
    return report


def _audit(section: Section, value: dict[str, Any], outcome: str, actor: str) -> None:
    """Every change the catalog makes is in the audit log, with the entry as it now reads."""
    from audit.services import audit_record
    from tenancy.models import Org

    key = "/".join(str(value.get(k)) for k in section.natural_key)
    org_slug = value.get("org") if section.name != "orgs" else value.get("slug")
    audit_record(
        action=f"{section.name}.{outcome}",
        object_type=section.name,
        object_key=key,
        changes=value,
        actor=actor,
        org=Org.objects.filter(slug=org_slug).first() if isinstance(org_slug, str) else None,
    )


def read_document(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise CatalogError(
            [f"{path.name}: not valid {path.suffix[1:].upper() or 'YAML'}: {exc}"]
        ) from None


def load_catalog_file(path: str | Path, *, actor: str = "load_catalog") -> LoadReport:
    return load_catalog(read_document(Path(path)), actor=f"{actor} {Path(path).name}")


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
