import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from metering.models import UsageEvent
from tenancy.services import api_key_create

from .conftest import make_event
from .factories import UserFactory
from .support.throttle import rates_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tight_ingest_rate(settings):
    original = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    rates = dict(original)
    rates["ingest"] = "2/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    cache.clear()
    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = rates_of(api_settings)
    yield
    cache.clear()
    # Not api_settings.reload(): `settings` is restored after this teardown, so a reload here
    # would keep 2/min for every later test in the session.
    SimpleRateThrottle.THROTTLE_RATES = original


@pytest.mark.usefixtures("gpu_meter", "tight_ingest_rate")
def test_ingestion_is_rate_limited_per_key_with_retry_after(org, client_for):
    key_a = api_key_create(name="a", org=org).raw_key
    key_b = api_key_create(name="b", org=org).raw_key
    post = "application/cloudevents+json"

    statuses = [
        client_for(key_a).post("/api/v1/events", data=make_event(id=f"e{i}"), content_type=post)
        for i in range(3)
    ]
    other = client_for(key_b).post("/api/v1/events", data=make_event(id="x"), content_type=post)

    assert [r.status_code for r in statuses] == [202, 202, 429]
    assert statuses[2].json()["code"] == "rate_limited"
    assert int(statuses[2]["Retry-After"]) > 0
    assert other.status_code == 202
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {"e0", "e1", "x"}


def test_login_is_locked_after_repeated_failures(db, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory.create(username="victim")
    client = Client()

    for _ in range(3):
        client.post("/accounts/login/", {"username": "victim", "password": "wrong"})
    locked = client.post(
        "/accounts/login/", {"username": "victim", "password": "pw-for-tests-only"}
    )

    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert "_auth_user_id" not in client.session
    assert user.pk


def test_login_form_needs_a_csrf_token(db):
    UserFactory.create(username="someone")
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        "/accounts/login/", {"username": "someone", "password": "pw-for-tests-only"}
    )

    assert response.status_code == 403


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True
    )


def test_production_settings_pass_check_deploy(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY="x" * 64 + "-production-secret-0123456789",
        ALLOWED_HOSTS="billing.example.com",
        TESSERA_VAR_DIR=str(tmp_path),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_the_built_in_secret_key(tmp_path):
    result = _manage("check", DEBUG="false", TESSERA_VAR_DIR=str(tmp_path), SECRET_KEY="")

    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_nul_characters_in_urls_are_refused_before_any_query():
    response = Client().get("/api/v1/invoices", {"status": "paid\x00"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_characters"
