import pytest
from rest_framework.test import APIClient

from metering.models import Allocation
from tenancy.services import api_key_create, staff_user_create

URL = "/api/v1/allocations"


@pytest.fixture
def operator(db):
    client = APIClient()
    client.force_authenticate(staff_user_create(username="ops", role="operator"))
    return client


def allocate(client, **overrides):
    body = {
        "org": "acme",
        "node": "node-1",
        "device_uuid": "GPU-1",
        "start": "2026-11-01T00:00:00Z",
        "end": "2026-11-02T00:00:00Z",
        **overrides,
    }
    return client.post(URL, body, format="json")


@pytest.mark.usefixtures("org", "other_org")
def test_operator_writes_and_collector_reads_its_node(operator, client_for, collector_key):
    assert allocate(operator).status_code == 201
    assert (
        allocate(operator, org="globex", start="2026-11-02T00:00:00Z", end=None).status_code == 201
    )
    assert allocate(operator, node="node-2").status_code == 201

    body = (
        client_for(collector_key)
        .get(
            URL, {"node": "node-1", "start": "2026-11-01T12:00:00Z", "end": "2026-11-03T00:00:00Z"}
        )
        .json()
    )

    assert body["results"] == [
        {
            "id": body["results"][0]["id"],
            "org": "acme",
            "node": "node-1",
            "device_uuid": "GPU-1",
            "start": "2026-11-01T00:00:00Z",
            "end": "2026-11-02T00:00:00Z",
        },
        {
            "id": body["results"][1]["id"],
            "org": "globex",
            "node": "node-1",
            "device_uuid": "GPU-1",
            "start": "2026-11-02T00:00:00Z",
            "end": None,
        },
    ]


@pytest.mark.usefixtures("org")
def test_overlapping_allocations_of_a_device_are_refused(operator):
    allocate(operator)

    response = allocate(operator, start="2026-11-01T23:00:00Z", end="2026-11-03T00:00:00Z")

    assert response.status_code == 409
    assert response.json()["code"] == "allocation_conflict"
    assert Allocation.objects.count() == 1


@pytest.mark.usefixtures("org")
def test_ending_an_open_allocation(operator):
    created = allocate(operator, end=None).json()

    response = operator.post(
        f"{URL}/{created['id']}/end", {"end": "2026-11-01T06:30:00Z"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["end"] == "2026-11-01T06:30:00Z"


@pytest.mark.usefixtures("org")
def test_naive_times_and_unknown_orgs_are_named(operator):
    naive = allocate(operator, start="2026-11-01T00:00:00")
    unknown = allocate(operator, org="nope")

    assert naive.status_code == 400
    assert "start" in naive.json()["fields"]
    assert unknown.status_code == 400
    assert unknown.json()["fields"] == {"org": ["No org 'nope'."]}
    assert Allocation.objects.count() == 0


def test_org_keys_and_customers_may_not_read_or_write(org, client_for):
    key = api_key_create(name="r", org=org, scope="read").raw_key
    params = {"node": "node-1", "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}

    assert client_for(key).get(URL, params).status_code == 403
    assert allocate(client_for(key)).status_code == 403
    assert Allocation.objects.count() == 0
