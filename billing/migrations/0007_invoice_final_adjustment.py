"""Final adjustment invoices (SPEC §6 step 5): an invoice has a ``kind``; only period
invoices are one per period.

On SQLite, adding the column and swapping the unique constraint rebuild ``billing_invoice``:
the triggers of 0004 are dropped first and created again after, with ``kind`` among the
invoice's frozen columns.
PostgreSQL compares whole rows, so its guard covers the new column as it is.
"""

import importlib
from collections.abc import Callable
from typing import Any

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

immutability = importlib.import_module("billing.migrations.0004_invoice_immutability")

INVOICE_FROZEN_COLUMNS = (*immutability.INVOICE_FROZEN_COLUMNS, "kind")
UPDATE_GUARD = "CREATE TRIGGER billing_invoice_guard_update "


def sqlite_statements(columns: tuple[str, ...]) -> list[str]:
    """0004's SQLite triggers, the invoice's update guard over ``columns``."""
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)
    guard = (
        f"{UPDATE_GUARD}BEFORE UPDATE ON billing_invoice "
        f"WHEN OLD.status <> 'draft' AND ({changed}) "
        "BEGIN SELECT RAISE(ABORT, 'a finalized invoice never changes'); END"
    )
    return [
        guard if statement.startswith(UPDATE_GUARD) else statement
        for statement in immutability._sqlite_statements()
    ]


def drop_sqlite_triggers(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Before SQLite rebuilds ``billing_invoice``: the triggers of its child tables name it,
    and SQLite refuses to rename a table into place while a trigger names a missing one."""
    if schema_editor.connection.vendor == "sqlite":
        for name in immutability._sqlite_trigger_names():
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


def create_sqlite_triggers(columns: tuple[str, ...]) -> Callable[[Any, Any], None]:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "sqlite":
            for statement in sqlite_statements(columns):
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_invoice_status_graph")]

    operations = [
        migrations.RunPython(
            drop_sqlite_triggers,
            create_sqlite_triggers(immutability.INVOICE_FROZEN_COLUMNS),
            elidable=False,
        ),
        migrations.RemoveConstraint(model_name="invoice", name="invoice_one_per_period"),
        migrations.AddField(
            model_name="invoice",
            name="kind",
            field=models.CharField(
                choices=[
                    ("period", "Period invoice"),
                    ("final_adjustment", "Final adjustment invoice"),
                ],
                default="period",
                max_length=24,
            ),
        ),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.UniqueConstraint(
                condition=models.Q(kind="period"),
                fields=("org", "period"),
                name="invoice_one_per_period",
            ),
        ),
        migrations.RunPython(
            create_sqlite_triggers(INVOICE_FROZEN_COLUMNS), drop_sqlite_triggers, elidable=False
        ),
    ]
