"""Re-create the database's invoice status guard from ``billing.invoicing.status``.

The guard of migration 0004 is generated from the status graph (``TRANSITIONS``); this
migration replaces the guard of databases migrated before that, and is the pattern for any
later change of the graph: change ``TRANSITIONS``, add a migration that runs ``forward``.
"""

import importlib

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

immutability = importlib.import_module("billing.migrations.0004_invoice_immutability")


def forward(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # CREATE OR REPLACE: the trigger keeps calling the function, now with the new body.
        schema_editor.execute(immutability.PG_INVOICE_GUARD, params=None)
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS billing_invoice_guard_status")
        schema_editor.execute(immutability.SQLITE_STATUS_GUARD)


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_merge_0004_deals_0004_invoice_immutability")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop, elidable=False)]
