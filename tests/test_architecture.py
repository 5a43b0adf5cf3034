"""Rules of the code's shape that no linter states (STYLE "Errors, locks and edges")."""

from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
APPS = ("tenancy", "metering", "billing", "webhooks", "audit", "portal", "web", "demo", "core",
        "config", "testing")  # fmt: skip


def _sources() -> list[Path]:
    return [path for app in APPS for path in (ROOT / app).rglob("*.py")
            if "migrations" not in path.parts]  # fmt: skip


def test_row_locks_are_taken_only_in_lock_objects_modules():
    locking = sorted(
        str(path.relative_to(ROOT))
        for path in _sources()
        if "select_for_update" in path.read_text() and path.name != "lock_objects.py"
    )
    assert locking == []


def test_iso_times_are_parsed_only_by_the_one_parser():
    parsing = sorted(
        str(path.relative_to(ROOT))
        for path in _sources()
        if "datetime.fromisoformat" in path.read_text() or "parse_datetime" in path.read_text()
    )
    # The collectors run on bare nodes and import nothing from the rest of Tessera.
    assert set(parsing) <= {"core/timeparse.py", "metering/collectors/common.py"}


def test_no_module_imports_itself_through_others():
    """No import cycle between modules, function-level imports included (``lint-imports``
    checks the layers; this checks what no layer contract states)."""
    graph = grimp.build_graph(*APPS, cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append((module, imported))
    assert cycles == []
