from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from metering.ingestion import Ingestor
from metering.rollups import rollup_pending
from tenancy.models import Membership, StaffRole
from tenancy.services import api_key_create, staff_user_create

from ..conftest import make_event
from ..factories import MembershipFactory, UserFactory

DAY = datetime(2026, 11, 20, tzinfo=UTC)
URL = "/api/v1/usage"


@pytest.fixture
def usage(org, other_org, gpu_meter):
    collector = api_key_create(name="c").api_key
    events = [
        make_event(
            id="1",
            time=DAY + timedelta(hours=1),
            data={"gpu_seconds": "60", "gpu_model": "H100", "region": "eu-north"},
        ),
        make_event(
            id="2",
            time=DAY + timedelta(hours=1, minutes=1),
            data={"gpu_seconds": "30", "gpu_model": "H200", "region": "eu-north"},
        ),
        make_event(
            id="3",
            time=DAY + timedelta(hours=2),
            data={"gpu_seconds": "60", "gpu_model": "H100", "region": "us-east"},
        ),
        make_event(
            id="4",
            time=DAY + timedelta(days=1),
            data={"gpu_seconds": "15.5", "gpu_model": "H100", "region": "eu-north"},
        ),
        make_event(
            id="x",
            subject="globex",
            time=DAY + timedelta(hours=1),
            data={"gpu_seconds": "999", "gpu_model": "H100", "region": "eu-north"},
        ),
    ]
    Ingestor(api_key=collector, now=DAY + timedelta(days=3)).ingest(events)
    rollup_pending()


def read_client(org) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='r', org=org, scope='read').raw_key}"
    )
    return client


def query(**params):
    return {"meter": "gpu_time", "start": "2026-11-20", "end": "2026-11-22", **params}


@pytest.mark.usefixtures("usage")
def test_daily_usage_of_my_org(org):
    body = read_client(org).get(URL, query()).json()

    assert body["org"] == "acme"
    assert body["unit"] == "GPU-second"
    assert [(r["start"], r["value"], r["event_count"]) for r in body["results"]] == [
        ("2026-11-20T00:00:00Z", "150.000000", 3),
        ("2026-11-21T00:00:00Z", "15.500000", 1),
    ]


@pytest.mark.usefixtures("usage")
def test_hourly_usage_grouped_by_gpu_model(org):
    body = (
        read_client(org)
        .get(URL, query(window="hour", group_by="gpu_model", end="2026-11-21"))
        .json()
    )

    assert [(r["start"], r["dimensions"], r["value"]) for r in body["results"]] == [
        ("2026-11-20T01:00:00Z", {"gpu_model": "H100"}, "60.000000"),
        ("2026-11-20T01:00:00Z", {"gpu_model": "H200"}, "30.000000"),
        ("2026-11-20T02:00:00Z", {"gpu_model": "H100"}, "60.000000"),
    ]


@pytest.mark.usefixtures("usage")
def test_monthly_usage_filtered_by_region(org):
    body = read_client(org).get(URL, {**query(window="month"), "filter.region": "eu-north"}).json()

    # The month's window is clamped to the range asked for: it says which hours it counts.
    assert [(r["start"], r["end"], r["value"]) for r in body["results"]] == [
        ("2026-11-20T00:00:00Z", "2026-11-22T00:00:00Z", "105.500000")
    ]


@pytest.mark.usefixtures("usage")
def test_org_key_cannot_read_another_org(org):
    response = read_client(org).get(URL, query(org="globex"))

    assert response.status_code == 403
    assert "globex" not in str(read_client(org).get(URL, query()).json())


@pytest.mark.usefixtures("usage")
def test_unknown_org_is_403_like_a_forbidden_one(org):
    assert read_client(org).get(URL, query(org="nope")).status_code == 403


@pytest.mark.usefixtures("usage")
def test_ingest_key_cannot_read(org, client_for):
    key = api_key_create(name="i", org=org, scope="ingest").raw_key

    assert client_for(key).get(URL, query()).status_code == 403


@pytest.mark.usefixtures("usage")
def test_member_reads_own_org_and_not_others(org, other_org):
    user = UserFactory.create()
    MembershipFactory.create(user=user, org=org, role=Membership.Role.VIEWER)
    client = APIClient()
    client.force_authenticate(user)

    assert client.get(URL, query()).json()["results"][0]["value"] == "150.000000"
    assert client.get(URL, query(org="globex")).status_code == 403


@pytest.mark.usefixtures("usage")
def test_staff_read_any_org_but_must_name_it(org, other_org):
    finance = staff_user_create(username="fin", role=StaffRole.FINANCE)
    client = APIClient()
    client.force_authenticate(finance)

    assert client.get(URL, query()).status_code == 400
    assert client.get(URL, query(org="globex")).json()["results"][0]["value"] == "999.000000"


@pytest.mark.usefixtures("usage")
def test_account_manager_sees_only_assigned_orgs(org, other_org):
    manager = staff_user_create(username="am", role=StaffRole.ACCOUNT_MANAGER)
    org.account_manager = manager
    org.save()
    client = APIClient()
    client.force_authenticate(manager)

    assert client.get(URL, query()).status_code == 200
    assert client.get(URL, query(org="globex")).status_code == 403


def test_anonymous_is_401(db):
    assert APIClient().get(URL, query()).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"meter": "nope"}, "meter"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-11-20T10:30:00Z"}, "end"),
        ({"end": "2026-11-19"}, "end"),
        ({"window": "week"}, "window"),
        ({"group_by": "colour"}, "group_by"),
    ],
)
@pytest.mark.usefixtures("usage")
def test_bad_queries_name_the_field(org, params, field):
    response = read_client(org).get(URL, query(**params))

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["fields"]


def test_quantities_keep_six_to_twelve_places():
    from metering.apis import format_quantity

    assert format_quantity(Decimal("3600")) == "3600.000000"
    assert format_quantity(Decimal("0.000000000001")) == "0.000000000001"
    assert format_quantity(Decimal("1.23456789")) == "1.23456789"
