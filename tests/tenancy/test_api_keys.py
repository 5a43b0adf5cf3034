import hashlib

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenancy.models import ApiKey, StaffRole
from tenancy.services import api_key_create, api_key_revoke

from ..conftest import make_event


def test_key_is_stored_hashed_and_shown_once(org):
    issued = api_key_create(name="k", org=org, scope="read")

    stored = ApiKey.objects.get()
    assert issued.raw_key.startswith(f"tsk_{stored.prefix}_")
    assert stored.key_hash == hashlib.sha256(issued.raw_key.encode()).hexdigest()
    assert issued.raw_key not in str(list(ApiKey.objects.values()))


def test_org_key_scope_must_be_ingest_or_read(org):
    with pytest.raises(ValueError, match="scope must be 'ingest' or 'read'"):
        api_key_create(name="k", org=org, scope="collector")
    assert ApiKey.objects.count() == 0


def test_collector_key_has_no_org(db):
    key = api_key_create(name="gpu-node").api_key

    assert (key.org, key.kind, key.scope) == (None, "collector", "collector")


@pytest.mark.usefixtures("gpu_meter")
def test_last_use_is_recorded_without_a_write_per_request(org, client_for):
    issued = api_key_create(name="k", org=org, scope="ingest")
    client = client_for(issued.raw_key)
    url, ctype = "/api/v1/events", "application/cloudevents+json"

    client.post(url, data=make_event(id="a"), content_type=ctype)
    first_use = ApiKey.objects.get().last_used_at
    with CaptureQueriesContext(connection) as queries:
        client.post(url, data=make_event(id="b"), content_type=ctype)

    assert first_use is not None
    assert ApiKey.objects.get().last_used_at == first_use
    assert not [q for q in queries if 'UPDATE "tenancy_apikey"' in q["sql"]]


def test_revoking_twice_keeps_the_first_time(org):
    key = api_key_create(name="k", org=org).api_key
    first = api_key_revoke(api_key=key).revoked_at

    assert api_key_revoke(api_key=key).revoked_at == first


def test_create_api_key_command_prints_the_key_once(org, capsys):
    call_command("create_api_key", "acme", "--scope", "read")

    out = capsys.readouterr().out
    key = ApiKey.objects.get()
    assert f"tsk_{key.prefix}_" in out
    assert "shown once" in out
    assert (key.org, key.scope) == (org, "read")


def test_create_collector_key_command(db, capsys):
    call_command("create_api_key", "--collector", "gpu-node-7", "--quiet")

    raw = capsys.readouterr().out.strip()
    assert (
        ApiKey.objects.get(kind="collector", name="gpu-node-7").key_hash
        == hashlib.sha256(raw.encode()).hexdigest()
    )


def test_create_api_key_for_unknown_org_fails_clearly(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No org 'nope'"):
        call_command("create_api_key", "nope")
    assert ApiKey.objects.count() == 0


def test_create_staff_user_command_is_idempotent(db):
    from django.contrib.auth import get_user_model

    call_command("create_staff_user", "fin", "--role", "finance", "--password", "s3cret-pass")
    call_command("create_staff_user", "fin", "--role", "finance")

    user = get_user_model().objects.get(username="fin")
    assert list(user.groups.values_list("name", flat=True)) == [StaffRole.FINANCE]
    assert user.check_password("s3cret-pass")
    assert not user.is_superuser


def test_operator_gets_the_admin(db):
    from tenancy.services import staff_user_create

    user = staff_user_create(username="ops", role="operator")

    assert user.is_staff
    assert user.is_superuser
    assert not user.has_usable_password()


def test_operators_revoke_keys_from_the_admin(org):
    from django.test import Client

    from tenancy.services import staff_user_create

    key = api_key_create(name="k", org=org).api_key
    client = Client()
    client.force_login(staff_user_create(username="ops", role="operator"))

    response = client.post(
        "/admin/tenancy/apikey/", {"action": "revoke", "_selected_action": [key.pk]}
    )

    key.refresh_from_db()
    assert response.status_code == 302
    assert key.revoked_at is not None
