"""``Cache-Control: no-store`` on the pages and documents a browser or proxy must not keep:
the portal (and the page showing a new API key), consoles, PDFs and downloads."""

from django.test import Client

from tenancy.models import Membership

from .factories import MembershipFactory, OrgFactory, UserFactory


def owner_client():
    acme = OrgFactory.create(slug="acme")
    user = UserFactory.create()
    MembershipFactory.create(org=acme, user=user, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    return client


def no_store(response) -> bool:
    return "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_portal_pages_and_the_new_key_page_are_not_stored(db):
    client = owner_client()
    key_page = client.post("/portal/keys", {"org": "acme", "name": "ci", "scope": "read"})
    assert key_page.status_code == 200
    assert "tsk_" in key_page.content.decode()
    assert no_store(key_page)
    for path in ("/portal/", "/portal/prices", "/portal/alerts", "/portal/webhooks"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert no_store(response), path


def test_api_reads_and_health_checks_are_not_marked(db):
    client = owner_client()
    assert "Cache-Control" not in client.get("/api/v1/products")
    assert "Cache-Control" not in client.get("/healthz")
