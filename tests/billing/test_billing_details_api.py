"""An org's billing details through the API: the VAT id is checked when it is entered."""

from typing import Any

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from audit.models import AuditEntry
from tenancy.models import Membership, Org

from ..factories import OrgFactory, UserFactory


def _client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def hooli(db: None) -> Any:
    return OrgFactory(slug="hooli", country="DE", vat_id="", currency="EUR")


def _owner(org: Any, role: str = "owner") -> APIClient:
    user: Any = UserFactory(username=f"{role}-{org.slug}")
    Membership.objects.create(org=org, user=user, role=role)
    return _client(user)


def test_an_owner_sets_a_valid_vat_id_compacted(hooli):
    response = _owner(hooli).patch(
        "/api/v1/orgs/hooli/billing-details", {"vat_id": "de 811 907 980"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["vat_id"] == "DE811907980"
    assert Org.objects.get(slug="hooli").vat_id == "DE811907980"
    assert AuditEntry.objects.filter(action="org.billing_details").count() == 1


def test_an_invalid_vat_id_is_a_400_naming_the_field_and_changes_nothing(hooli):
    response = _owner(hooli).patch(
        "/api/v1/orgs/hooli/billing-details", {"vat_id": "DE123456789"}, format="json"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_billing_details"
    assert list(body["fields"]) == ["vat_id"]
    assert "check digit" in body["fields"]["vat_id"][0]
    assert Org.objects.get(slug="hooli").vat_id == ""
    assert not AuditEntry.objects.filter(action="org.billing_details").exists()


def test_a_viewer_may_read_but_not_change(hooli):
    viewer = _owner(hooli, role="viewer")

    assert viewer.get("/api/v1/orgs/hooli/billing-details").json()["country"] == "DE"
    response = viewer.patch(
        "/api/v1/orgs/hooli/billing-details", {"vat_id": "DE811907980"}, format="json"
    )
    assert response.status_code == 403
    assert Org.objects.get(slug="hooli").vat_id == ""


def test_finance_may_change_any_org(hooli):
    user: Any = UserFactory(username="fin")
    user.groups.add(Group.objects.get_or_create(name="finance")[0])

    response = _client(user).patch(
        "/api/v1/orgs/hooli/billing-details",
        {"country": "BE", "vat_id": "BE0403019261", "billing_email": "ap@hooli.example"},
        format="json",
    )

    assert response.status_code == 200
    assert (response.json()["country"], response.json()["billing_email"]) == (
        "BE", "ap@hooli.example")  # fmt: skip
