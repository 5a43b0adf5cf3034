"""Pricing as code (SPEC §5): ``load_catalog FILE`` validates a whole YAML/JSON file, then upserts.

The file is read section by section in dependency order. Each section validates all of its
entries against the file and the database before anything is written; on any error the load
stops with every error named (entry and field) and writes nothing. Loading the same file
twice changes nothing: every entry is upserted by its natural key.

Each section (``sections``, ``rate_cards``, ``contracts``) is built from ``base``; ``loader``
lists them in dependency order (``SECTIONS``) and runs them.
"""

from .base import CatalogError, LoadReport
from .loader import load_catalog, load_catalog_file

__all__ = ["CatalogError", "LoadReport", "load_catalog", "load_catalog_file"]
