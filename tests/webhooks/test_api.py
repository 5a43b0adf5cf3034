"""The webhooks API: who may see and manage endpoints, secrets only to managers, the
delivery log and replay (SPEC §5)."""

import pytest
from rest_framework.test import APIClient

from tenancy.models import Membership
from tenancy.services import api_key_create, staff_user_create
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_endpoint_create, webhook_event_emit

from ..factories import MembershipFactory, OrgFactory, UserFactory


def member(org, role):
    user = UserFactory.create()
    MembershipFactory.create(org=org, user=user, role=role)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def acme(db):
    return OrgFactory.create(slug="acme")


def test_an_owner_adds_an_endpoint_and_sees_its_secret(acme, receiver):
    owner = member(acme, Membership.Role.OWNER)
    created = owner.post(
        "/api/v1/webhook-endpoints",
        {"org": "acme", "url": receiver.url, "events": ["alert.triggered"]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["org"], body["events"], body["status"]) == ("acme", ["alert.triggered"], "active")
    assert body["secrets"][0]["secret"].startswith("whsec_")
    rotated = owner.post(f"/api/v1/webhook-endpoints/{body['id']}/rotate-secret", {}, format="json")
    assert [s["expires_at"] is None for s in rotated.json()["secrets"]] == [True, False]


def test_viewers_and_read_keys_see_endpoints_without_secrets_and_cannot_manage(acme, receiver):
    endpoint, _ = webhook_endpoint_create(org=acme, url=receiver.url)
    viewer = member(acme, Membership.Role.VIEWER)
    key = APIClient()
    key.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='r', org=acme, scope='read').raw_key}"
    )
    for client in (viewer, key):
        listed = client.get("/api/v1/webhook-endpoints").json()["results"]
        assert [e["id"] for e in listed] == [endpoint.pk]
        assert "secrets" not in listed[0]
        assert client.delete(f"/api/v1/webhook-endpoints/{endpoint.pk}").status_code == 403
        assert (
            client.post(
                "/api/v1/webhook-endpoints", {"org": "acme", "url": receiver.url}, format="json"
            ).status_code
            == 403
        )
    assert WebhookEndpoint.objects.count() == 1


def test_another_org_cannot_see_or_touch_an_endpoint(acme, receiver):
    endpoint, _ = webhook_endpoint_create(org=acme, url=receiver.url)
    webhook_event_emit(org=acme, type="invoice.paid", data={"number": "X"})
    delivery = endpoint.deliveries.get()
    stranger = member(OrgFactory.create(slug="globex"), Membership.Role.OWNER)
    assert stranger.get(f"/api/v1/webhook-endpoints/{endpoint.pk}").status_code == 404
    assert stranger.get(f"/api/v1/webhook-endpoints/{endpoint.pk}/deliveries").status_code == 404
    assert stranger.post(f"/api/v1/webhook-deliveries/{delivery.pk}/replay").status_code == 404
    assert stranger.get("/api/v1/webhook-endpoints").json()["results"] == []
    assert (
        stranger.post(
            "/api/v1/webhook-endpoints", {"org": "acme", "url": receiver.url}, format="json"
        ).status_code
        == 403
    )


def test_platform_endpoints_are_for_finance_and_operators(acme, receiver):
    client = APIClient()
    owner = member(acme, Membership.Role.OWNER)
    refused = owner.post("/api/v1/webhook-endpoints", {"url": receiver.url}, format="json")
    assert refused.status_code == 403
    client.force_login(staff_user_create(username="fin", role="finance"))
    created = client.post("/api/v1/webhook-endpoints", {"url": receiver.url}, format="json")
    assert created.status_code == 201
    assert created.json()["org"] is None
    assert owner.get("/api/v1/webhook-endpoints").json()["results"] == []
    platform = client.get("/api/v1/webhook-endpoints", {"platform": "1"}).json()["results"]
    assert [e["org"] for e in platform] == [None]


def test_the_delivery_log_and_replay(acme, receiver, django_capture_on_commit_callbacks):
    endpoint, _ = webhook_endpoint_create(org=acme, url=receiver.url)
    receiver.answer(503)
    with django_capture_on_commit_callbacks(execute=True):
        webhook_event_emit(org=acme, type="invoice.paid", data={"number": "TFR-9"})
    owner = member(acme, Membership.Role.OWNER)
    [row] = owner.get(f"/api/v1/webhook-endpoints/{endpoint.pk}/deliveries").json()["results"]
    assert (row["event_type"], row["status"], row["last_status_code"]) == (
        "invoice.paid",
        "pending",
        503,
    )
    receiver.answer(204)
    with django_capture_on_commit_callbacks(execute=True):
        replayed = owner.post(f"/api/v1/webhook-deliveries/{row['id']}/replay")
    assert replayed.status_code == 202
    detail = owner.get(f"/api/v1/webhook-deliveries/{row['id']}").json()
    assert detail["delivery"]["status"] == "succeeded"
    assert [a["status_code"] for a in detail["attempts"]] == [204, 503]
    assert detail["attempts"][0]["replay"] is True
    assert [r.headers["webhook-id"] for r in receiver.requests] == [row["event_id"]] * 2


def test_bad_input_names_the_field(acme):
    owner = member(acme, Membership.Role.OWNER)
    response = owner.post(
        "/api/v1/webhook-endpoints",
        {"org": "acme", "url": "https://example.com/x", "events": ["invoice.eaten"]},
        format="json",
    )
    assert response.status_code == 400
    assert "events" in response.json()["fields"]
