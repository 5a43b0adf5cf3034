"""Loading a catalog file: validate every section, then upsert every entry in one transaction
(SPEC §5 "Pricing as code")."""

import json
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction
from django.db.models import Model

from audit.services import audit_record
from tenancy.models import Org

from ..rating.triggers import inputs_changed
from .base import CatalogError, Context, LoadReport, Section
from .contracts import CONTRACTS
from .entries import Entry
from .rate_cards import RATE_CARDS
from .sections import CAPACITY_POOLS, ISSUERS, METERS, ORGS, PRODUCTS

# In dependency order: each section may name entries of the sections before it.
SECTIONS: tuple[Section, ...] = (
    ISSUERS, METERS, PRODUCTS, RATE_CARDS, ORGS, CAPACITY_POOLS, CONTRACTS,
)  # fmt: skip


def load_catalog(document: Any, *, actor: str = "load_catalog") -> LoadReport:
    """Validate the whole document, then upsert every entry in one transaction."""
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
    report = LoadReport(warnings=ctx.warnings)
    with transaction.atomic():
        changed: list[Model] = []
        for section in SECTIONS:
            for value in ctx.parsed.get(section.name, []):
                row, outcome = section.apply(value)
                report.count(section.name, outcome)
                if outcome != "unchanged":
                    _audit(section, value, outcome, actor)
                    changed.append(row)
        # The open and closing periods that read what changed are rated again, as an
        # amendment's are (orgs and capacity pools are no rating input).
        inputs_changed(changed)
    return report


def _audit(section: Section, value: dict[str, Any], outcome: str, actor: str) -> None:
    """Every change the catalog makes is in the audit log, with the entry as it now reads."""
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
