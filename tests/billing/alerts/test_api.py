"""The alerts API: owners set their org's alerts, finance any org's; viewers and keys read."""

import pytest
from rest_framework.test import APIClient

from billing.alerts.models import Alert
from tenancy.models import Membership
from tenancy.services import api_key_create, staff_user_create

from ...factories import MembershipFactory, OrgFactory, UserFactory


def member(org, role):
    user = UserFactory.create()
    MembershipFactory.create(org=org, user=user, role=role)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def acme(db):
    return OrgFactory.create(slug="acme", currency="EUR")


def test_an_owner_sets_an_alert_in_the_orgs_currency(acme):
    response = member(acme, Membership.Role.OWNER).post(
        "/api/v1/alerts",
        {"org": "acme", "kind": "cost_above", "threshold": "10000", "emails": ["cfo@acme.eu"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["threshold"], body["currency"], body["emails"]) == (
        "cost_above",
        "10000.0000",
        "EUR",
        ["cfo@acme.eu"],
    )


def test_viewers_keys_and_other_orgs_cannot_set_alerts(acme):
    payload = {"org": "acme", "kind": "credits_below", "threshold": "100"}
    viewer = member(acme, Membership.Role.VIEWER)
    key = APIClient()
    key.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='r', org=acme, scope='read').raw_key}"
    )
    stranger = member(OrgFactory.create(slug="globex"), Membership.Role.OWNER)
    for client in (viewer, key, stranger):
        assert client.post("/api/v1/alerts", payload, format="json").status_code == 403
    assert not Alert.objects.exists()
    alert = Alert.objects.create(org=acme, kind="credits_below", threshold=100, currency="EUR")
    assert [a["id"] for a in viewer.get("/api/v1/alerts").json()["results"]] == [alert.pk]
    assert viewer.delete(f"/api/v1/alerts/{alert.pk}").status_code == 403
    assert stranger.get(f"/api/v1/alerts/{alert.pk}").status_code == 404
    assert stranger.get("/api/v1/alerts", {"org": "acme"}).status_code == 403


def test_finance_sets_alerts_for_any_org(acme):
    client = APIClient()
    client.force_login(staff_user_create(username="fin", role="finance"))
    response = client.post(
        "/api/v1/alerts",
        {"org": "acme", "kind": "commitment_burn_above", "threshold": "90"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["currency"] == ""  # a percentage
    alert_id = response.json()["id"]
    paused = client.patch(f"/api/v1/alerts/{alert_id}", {"active": False}, format="json")
    assert paused.json()["active"] is False


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "reservation_utilization_below", "threshold": "150"}, "threshold"),
        ({"kind": "cost_above", "threshold": "0"}, "threshold"),
        ({"kind": "cost_above", "threshold": "5", "currency": "EURO"}, "currency"),
        ({"kind": "cost_above", "threshold": "5", "product": "nope"}, "product"),
        ({"kind": "reservation_utilization_below", "threshold": "5", "window_hours": 0},
         "window_hours"),
        ({"kind": "sometimes", "threshold": "5"}, "kind"),
    ],
)  # fmt: skip
def test_bad_alerts_name_the_field(acme, payload, field):
    response = member(acme, Membership.Role.OWNER).post(
        "/api/v1/alerts", {"org": "acme", **payload}, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Alert.objects.exists()
