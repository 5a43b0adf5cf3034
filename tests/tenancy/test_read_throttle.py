"""Every read endpoint is throttled per API key (or user) at TESSERA_READ_RATE; writes are
not counted against it."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tenancy.models import Membership
from tenancy.services import api_key_create

from ..factories import MembershipFactory, OrgFactory, UserFactory
from ..support.throttle import rates_of


@pytest.fixture
def tight_read_rate(settings):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    rates = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    rates["read"] = "3/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    cache.clear()
    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = rates_of(api_settings)
    yield
    cache.clear()
    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = rates_of(api_settings)


def keyed(org) -> APIClient:
    client = APIClient()
    raw = api_key_create(name="r", org=org, scope="read").raw_key
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.mark.usefixtures("tight_read_rate")
def test_reads_across_endpoints_share_one_budget_per_key(db):
    acme = OrgFactory.create(slug="acme")
    first, second = keyed(acme), keyed(acme)
    paths = ["/api/v1/products", "/api/v1/contracts", "/api/v1/rate-cards", "/api/v1/invoices"]
    statuses = [first.get(path).status_code for path in paths]
    over = first.get("/api/v1/alerts")
    assert statuses == [200, 200, 200, 429]
    assert over.status_code == 429
    assert over.json()["code"] == "rate_limited"
    assert int(over["Retry-After"]) > 0
    assert second.get("/api/v1/meters").status_code == 200  # another key, its own budget


@pytest.mark.usefixtures("tight_read_rate")
def test_writes_do_not_count_against_the_read_budget(db):
    acme = OrgFactory.create(slug="acme")
    user = UserFactory.create()
    MembershipFactory.create(org=acme, user=user, role=Membership.Role.OWNER)
    client = APIClient()
    client.force_login(user)
    for _ in range(5):
        created = client.post(
            "/api/v1/alerts",
            {"org": "acme", "kind": "cost_above", "threshold": "100"},
            format="json",
        )
        assert created.status_code == 201
    assert [client.get("/api/v1/alerts").status_code for _ in range(4)] == [200, 200, 200, 429]
