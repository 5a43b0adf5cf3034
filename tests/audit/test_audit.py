from pathlib import Path

import pytest
import yaml
from django.db import IntegrityError, InternalError, transaction
from django.test import Client

from audit.models import AuditEntry
from audit.services import audit_record
from billing.catalog import load_catalog
from billing.models import CreditGrant
from tenancy.services import staff_user_create

CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog-full.yaml"


def document():
    return yaml.safe_load(CATALOG.read_text())


def test_catalog_changes_are_logged_once_with_the_values_they_set(db):
    load_catalog(document(), actor="load_catalog pricing.yaml")
    first = AuditEntry.objects.count()

    load_catalog(document())
    doc = document()
    doc["contracts"][0]["credits"][0]["amount"] = "750.00"
    load_catalog(doc, actor="load_catalog pricing.yaml")

    contract_entries = AuditEntry.objects.filter(object_type="contracts").order_by("id")
    assert first > 0
    assert AuditEntry.objects.count() == first + 1  # the unchanged reload logged nothing
    latest = contract_entries.last()
    assert latest is not None
    assert latest.org is not None
    assert latest.action == "contracts.updated"
    assert latest.object_key == "acme/acme-2026"
    assert latest.org.slug == "acme"
    assert latest.actor == "load_catalog pricing.yaml"
    assert latest.changes["credits"][0]["amount"] == "750.00"
    assert CreditGrant.objects.get(key="welcome").amount == 750


@pytest.mark.parametrize(
    "operation", ["update", pytest.param("delete", marks=pytest.mark.postgres)]
)
def test_the_log_is_append_only_in_the_database(db, operation):
    entry = audit_record(action="x.created", object_type="x", object_key="1")

    rows = AuditEntry.objects.filter(pk=entry.pk)
    tamper = rows.update if operation == "update" else rows.delete
    kwargs = {"action": "tampered"} if operation == "update" else {}

    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        tamper(**kwargs)

    assert AuditEntry.objects.get(pk=entry.pk).action == "x.created"


def test_admin_edits_of_money_relevant_models_are_logged(db):
    load_catalog(document())
    operator = staff_user_create(username="ops", role="operator", password="pw-ops-1234")
    client = Client()
    client.force_login(operator)
    grant = CreditGrant.objects.get(key="welcome")
    form = client.get(f"/admin/billing/creditgrant/{grant.pk}/change/")
    assert form.status_code == 200

    fields = {
        name: form.context["adminform"].form.initial.get(name)
        for name in form.context["adminform"].form.fields
    }
    fields = {k: ("" if v is None else v) for k, v in fields.items()}
    fields["priority"] = 7
    response = client.post(f"/admin/billing/creditgrant/{grant.pk}/change/", fields)

    assert response.status_code == 302, response.content[:2000]
    entry = AuditEntry.objects.filter(object_type="creditgrant").get()
    assert entry.org is not None
    assert (entry.action, entry.actor, entry.org.slug) == ("creditgrant.updated", "ops", "acme")
    assert entry.changes == {"priority": 7}
