"""The database, not only the code, refuses to change a finalized invoice (EU invoicing law).

- ``billing_invoice``: once out of draft, no column changes but ``status``, ``status_reason``
  and ``status_changed_at``; status only moves forward (finalized → paid / void /
  uncollectible, uncollectible → paid / void); no DELETE.
- ``billing_invoiceline`` and ``billing_invoicetax``: no INSERT, UPDATE or DELETE under an
  invoice that is out of draft.
- ``billing_creditnote`` and its lines and taxes: never updated or deleted.

Violations raise SQLSTATE 23000 (PostgreSQL) / SQLITE_CONSTRAINT, i.e. ``IntegrityError``.
PostgreSQL compares whole rows (``to_jsonb``), so a column added later is protected without
touching this migration; SQLite lists the columns (``INVOICE_FROZEN_COLUMNS``; a test checks
the list against the model).
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from billing.invoicing.status import status_moves_sql

MUTABLE_COLUMNS = ("status", "status_reason", "status_changed_at")
INVOICE_FROZEN_COLUMNS = (
    "id", "org_id", "issuer_id", "contract_id", "period_id", "currency", "period_start",
    "period_end", "number", "number_year", "sequence", "issue_date", "due_date",
    "payment_terms_days", "subtotal", "credits", "tax_total", "total", "customer_name",
    "customer_address", "customer_country", "customer_vat_id", "issuer_name", "issuer_address",
    "issuer_country", "issuer_vat_id", "charges_rated_at", "created_at", "finalized_at",
)  # fmt: skip
# Generated from the one status graph, ``billing.invoicing.status.TRANSITIONS``; migration
# 0006 re-creates the guard from it, as must any migration that changes the graph.
STATUS_MOVES_FORWARD = status_moves_sql()
INVOICE_CHILDREN = ("billing_invoiceline", "billing_invoicetax")
CREDIT_NOTE_TABLES = ("billing_creditnote", "billing_creditnoteline", "billing_creditnotetax")

PG_INVOICE_GUARD = f"""
CREATE OR REPLACE FUNCTION billing_invoice_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'invoice % is %: it cannot be deleted', OLD.number, OLD.status
                USING ERRCODE = '23000';
        END IF;
        RETURN OLD;
    END IF;
    IF NOT ({STATUS_MOVES_FORWARD}) THEN
        RAISE EXCEPTION 'invoice %: status cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = '23000';
    END IF;
    IF OLD.status <> 'draft' AND (to_jsonb(NEW) - 'status' - 'status_reason'
            - 'status_changed_at') IS DISTINCT FROM (to_jsonb(OLD) - 'status' - 'status_reason'
            - 'status_changed_at') THEN
        RAISE EXCEPTION 'invoice % is %: a finalized invoice never changes', OLD.number, OLD.status
            USING ERRCODE = '23000';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
"""

PG_FORWARD = (
    PG_INVOICE_GUARD
    + """
CREATE TRIGGER billing_invoice_guard BEFORE UPDATE OR DELETE ON billing_invoice
    FOR EACH ROW EXECUTE FUNCTION billing_invoice_guard();

CREATE OR REPLACE FUNCTION billing_invoice_child_guard() RETURNS trigger AS $$
DECLARE
    frozen text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        SELECT number INTO frozen FROM billing_invoice
            WHERE id = OLD.invoice_id AND status <> 'draft';
        IF FOUND THEN
            RAISE EXCEPTION 'invoice % is finalized: its % rows never change', frozen, TG_TABLE_NAME
                USING ERRCODE = '23000';
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        SELECT number INTO frozen FROM billing_invoice
            WHERE id = NEW.invoice_id AND status <> 'draft';
        IF FOUND THEN
            RAISE EXCEPTION 'invoice % is finalized: its % rows never change', frozen, TG_TABLE_NAME
                USING ERRCODE = '23000';
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION billing_credit_note_guard() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'credit notes never change (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = '23000';
END $$ LANGUAGE plpgsql;
"""
    + "".join(
        f"""
CREATE TRIGGER {table}_guard BEFORE INSERT OR UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION billing_invoice_child_guard();
"""
        for table in INVOICE_CHILDREN
    )
    + "".join(
        f"""
CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION billing_credit_note_guard();
"""
        for table in CREDIT_NOTE_TABLES
    )
)

PG_BACKWARD = (
    "DROP TRIGGER IF EXISTS billing_invoice_guard ON billing_invoice;"
    + "".join(f"DROP TRIGGER IF EXISTS {t}_guard ON {t};" for t in INVOICE_CHILDREN)
    + "".join(f"DROP TRIGGER IF EXISTS {t}_guard ON {t};" for t in CREDIT_NOTE_TABLES)
    + "DROP FUNCTION IF EXISTS billing_invoice_guard();"
    + "DROP FUNCTION IF EXISTS billing_invoice_child_guard();"
    + "DROP FUNCTION IF EXISTS billing_credit_note_guard();"
)


SQLITE_STATUS_GUARD = (
    "CREATE TRIGGER billing_invoice_guard_status BEFORE UPDATE OF status ON billing_invoice "
    f"WHEN NOT ({STATUS_MOVES_FORWARD}) "
    "BEGIN SELECT RAISE(ABORT, 'an invoice status only moves forward'); END"
)


def _sqlite_statements() -> list[str]:
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in INVOICE_FROZEN_COLUMNS)
    abort = "BEGIN SELECT RAISE(ABORT, '{}'); END"
    frozen_parent = "(SELECT status FROM billing_invoice WHERE id = {}.invoice_id) <> 'draft'"
    statements = [
        "CREATE TRIGGER billing_invoice_guard_update BEFORE UPDATE ON billing_invoice "
        f"WHEN OLD.status <> 'draft' AND ({changed}) "
        + abort.format("a finalized invoice never changes"),
        SQLITE_STATUS_GUARD,
        "CREATE TRIGGER billing_invoice_guard_delete BEFORE DELETE ON billing_invoice "
        "WHEN OLD.status <> 'draft' " + abort.format("a finalized invoice cannot be deleted"),
    ]
    for table in INVOICE_CHILDREN:
        message = f"{table} rows of a finalized invoice never change"
        statements += [
            f"CREATE TRIGGER {table}_guard_insert BEFORE INSERT ON {table} "
            f"WHEN {frozen_parent.format('NEW')} " + abort.format(message),
            f"CREATE TRIGGER {table}_guard_update BEFORE UPDATE ON {table} "
            f"WHEN {frozen_parent.format('OLD')} OR {frozen_parent.format('NEW')} "
            + abort.format(message),
            f"CREATE TRIGGER {table}_guard_delete BEFORE DELETE ON {table} "
            f"WHEN {frozen_parent.format('OLD')} " + abort.format(message),
        ]
    for table in CREDIT_NOTE_TABLES:
        message = f"{table} rows never change"
        statements += [
            f"CREATE TRIGGER {table}_guard_update BEFORE UPDATE ON {table} "
            + abort.format(message),
            f"CREATE TRIGGER {table}_guard_delete BEFORE DELETE ON {table} "
            + abort.format(message),
        ]
    return statements


def _sqlite_trigger_names() -> list[str]:
    names = [f"billing_invoice_guard_{op}" for op in ("update", "status", "delete")]
    names += [f"{t}_guard_{op}" for t in INVOICE_CHILDREN for op in ("insert", "update", "delete")]
    names += [f"{t}_guard_{op}" for t in CREDIT_NOTE_TABLES for op in ("update", "delete")]
    return names


def forward(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
    elif vendor == "sqlite":
        for statement in _sqlite_statements():
            schema_editor.execute(statement)


def backward(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)
    elif vendor == "sqlite":
        for name in _sqlite_trigger_names():
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_invoicing")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
