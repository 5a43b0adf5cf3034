"""Security leftovers of issue 8: cookies and sessions, CSRF on every form of the pages, the
webhook refusing anything not signed with our secret, API keys compared in constant time."""

import hmac
import json
import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from typing import Any

import pytest
import stripe
from django.test import Client

from billing.deals.models import Deal
from billing.deals.services import deal_submit
from billing.invoicing.models import CreditNote, Invoice, StripeEvent
from billing.models import BillingPeriod
from tenancy import authentication
from tenancy.models import ApiKey
from tenancy.services import api_key_create, staff_user_create

from ..support.narrow import present
from ..support.workers import ROOT

# --- sessions and cookies -----------------------------------------------------------------


def test_login_sets_an_httponly_lax_session_cookie_that_expires(db):
    staff_user_create(username="fiona", role="finance", password="correct horse battery")
    client = Client()
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        {"username": "fiona", "password": "correct horse battery"},
    )

    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert (session["httponly"], session["samesite"], session["max-age"]) == (True, "Lax", 43200)
    assert client.cookies["csrftoken"]["samesite"] == "Lax"


def test_production_cookies_are_secure_and_https_is_enforced(tmp_path):
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ["
        "'SESSION_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_SAMESITE', "
        "'CSRF_COOKIE_SECURE', 'CSRF_COOKIE_SAMESITE', 'SECURE_SSL_REDIRECT', "
        "'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER', 'X_FRAME_OPTIONS', 'DEBUG', "
        "'SESSION_COOKIE_AGE', 'SECURE_CONTENT_TYPE_NOSNIFF']}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": "y" * 64,
        "ALLOWED_HOSTS": "billing.example.com",
        "TESSERA_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_SAMESITE": "Lax",
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "X_FRAME_OPTIONS": "DENY",
        "DEBUG": False,
        "SESSION_COOKIE_AGE": 43200,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
    }


# --- CSRF on every form -------------------------------------------------------------------


class Forms(HTMLParser):
    """The POST forms of a page: (action, fields without the CSRF token)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._open = {}
            self.forms.append((a.get("action") or self.page, self._open))
        elif tag in ("input", "textarea", "select") and self._open is not None and a.get("name"):
            if a["name"] != "csrfmiddlewaretoken":
                self._open.setdefault(a["name"], a.get("value") or "x")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def snapshot() -> tuple[Any, ...]:
    return (
        sorted(ApiKey.objects.values_list("pk", "revoked_at")),
        sorted(Invoice.objects.values_list("pk", "status")),
        CreditNote.objects.count(),
        sorted(Deal.objects.values_list("pk", "status")),
        sorted(BillingPeriod.objects.values_list("pk", "status")),
    )


def test_every_post_form_of_the_pages_is_refused_without_a_csrf_token(two_orgs):
    """Each form found on each page, posted by its rightful user without the token: 403 and
    nothing changed. Posted with the token it gets past CSRF (the 403 was CSRF's)."""
    a = two_orgs["a"]
    finance = staff_user_create(username="fiona", role="finance")
    api_key_create(name="portal-key", org=a.org, scope="read")
    deal_submit(actor=two_orgs["am"], deal_id=a.deal.pk)
    invoice = a.invoice  # finalized: the credit note, void and uncollectible forms
    anonymous = None
    pages = [
        (anonymous, "/accounts/login/"),
        (two_orgs["member"], "/portal/"),
        (two_orgs["am"], "/deals/new/"),
        (two_orgs["am"], f"/deals/{two_orgs['b'].deal.pk}/"),
        (finance, f"/deals/{a.deal.pk}/"),
        (finance, "/finance/"),
        (finance, "/finance/invoices/"),
        (finance, f"/finance/invoices/{invoice.pk}/"),
    ]
    seen: set[str] = set()
    for user, page in pages:
        browser = Client(enforce_csrf_checks=True)
        if user is not None:
            browser.force_login(user)
        response = browser.get(page)
        if response.status_code == 403:
            continue  # that user has no business there (the AM on another org's deal)
        assert response.status_code == 200, page
        parser = Forms(page)
        parser.feed(response.content.decode())
        for action, fields in parser.forms:
            before = snapshot()
            refused = browser.post(action, fields)
            assert refused.status_code == 403, f"{page}: {action} without a token"
            assert snapshot() == before, f"{page}: {action} changed something without a token"
            token = browser.cookies["csrftoken"].value
            allowed = browser.post(action, fields, HTTP_X_CSRFTOKEN=token)
            assert allowed.status_code != 403, f"{page}: {action} with a token"
            seen.add(action)
            if action.endswith("/logout/"):
                browser.force_login(user)
    assert {
        "/accounts/login/",
        "/accounts/logout/",
        "/portal/keys",
        f"/portal/keys/{present(ApiKey.objects.filter(org=a.org).first()).pk}/revoke",
        "/deals/new/",
        f"/deals/{a.deal.pk}/approve/",
        f"/finance/invoices/{invoice.pk}/credit-note/",
        f"/finance/invoices/{invoice.pk}/void/",
    } <= seen, seen


# --- the Stripe webhook -------------------------------------------------------------------

WEBHOOK = "/api/v1/stripe/webhook"


def _event() -> bytes:
    return json.dumps(
        {"id": "evt_rel_1", "object": "event", "type": "invoice.paid",
         "data": {"object": {"id": "in_x", "object": "invoice", "metadata": {}}}}
    ).encode()  # fmt: skip


def _signed(payload: bytes, secret: str, *, age: int = 0) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, timestamp=int(time.time()) - age
    )


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no signature header"),
        pytest.param({"HTTP_STRIPE_SIGNATURE": "t=1,v1=00"}, id="garbage signature"),
        pytest.param({"HTTP_STRIPE_SIGNATURE": "stale"}, id="ours, but 10 minutes old"),
    ],
)
def test_the_webhook_refuses_unsigned_or_stale_events(db, settings, headers):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_ours"
    payload = _event()
    if headers.get("HTTP_STRIPE_SIGNATURE") == "stale":
        headers = {"HTTP_STRIPE_SIGNATURE": _signed(payload, "whsec_ours", age=600)}

    response = Client().post(WEBHOOK, payload, content_type="application/json", **headers)

    assert (response.status_code, response.json()["code"]) == (400, "bad_signature")
    assert not StripeEvent.objects.exists()


def test_without_a_configured_secret_the_webhook_accepts_nothing(db, settings):
    """Unset STRIPE_WEBHOOK_SECRET must not mean "the empty key": anyone can sign with that."""
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = _event()

    response = Client().post(
        WEBHOOK, payload, content_type="application/json",
        HTTP_STRIPE_SIGNATURE=_signed(payload, ""),
    )  # fmt: skip

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "bad_signature"
    assert not StripeEvent.objects.exists()


def test_the_webhook_takes_only_post(db):
    for method in ("get", "put", "delete"):
        assert getattr(Client(), method)(WEBHOOK).status_code == 405


# --- API keys -----------------------------------------------------------------------------


def test_a_known_prefix_with_a_wrong_secret_is_compared_in_constant_time(org, monkeypatch):
    issued = api_key_create(name="k", org=org, scope="read")
    prefix = issued.api_key.prefix
    wrong = f"tsk_{prefix}_{'A' * 43}"
    assert wrong != issued.raw_key
    compared: list[tuple[str, str]] = []
    compare = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(authentication.hmac, "compare_digest", spy)
    response = Client().get("/api/v1/meters", HTTP_AUTHORIZATION=f"Bearer {wrong}")

    assert response.status_code == 401
    # The stored hash was compared, whole, through hmac.compare_digest: no early exit on
    # the first differing character, so timing tells nothing about the secret.
    assert compared == [(issued.api_key.key_hash, authentication.hash_key(wrong))]
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at is None


def test_an_unknown_prefix_costs_the_same_comparison(db, monkeypatch):
    compared: list[tuple[str, str]] = []

    def compare_digest(a: str, b: str) -> bool:
        compared.append((a, b))
        return False

    monkeypatch.setattr(authentication.hmac, "compare_digest", compare_digest)
    raw = api_key_create(name="k").raw_key
    ApiKey.objects.all().delete()

    response = Client().get("/api/v1/meters", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert response.status_code == 401
    assert compared == [("0" * 64, authentication.hash_key(raw))]
