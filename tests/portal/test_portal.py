import csv
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.test import Client

from billing.catalog import load_catalog
from billing.services import org_rate
from metering.ingestion import Ingestor
from metering.rollups import rollup_pending
from tenancy.models import ApiKey, Membership
from tenancy.services import api_key_create, staff_user_create

from ..conftest import make_event
from ..factories import MembershipFactory, OrgFactory, UserFactory

CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog-full.yaml"
NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)


@pytest.fixture
def acme(db):
    load_catalog(yaml.safe_load(CATALOG.read_text()))
    collector = api_key_create(name="c").api_key
    start = datetime(2026, 11, 1, tzinfo=UTC)
    events = []
    for h in range(48):  # 10 H100s for 48 hours: 2 burst above the 8 reserved
        events.append(
            make_event(
                id=f"gpu-{h}",
                time=start + timedelta(hours=h),
                data={"gpu_seconds": "36000", "gpu_model": "H100", "region": "eu-north"},
            )
        )
        events.append(
            make_event(
                id=f"tok-{h}",
                type="llm.tokens",
                source="gateway",
                time=start + timedelta(hours=h),
                data={  # as the token collector sends them (cached input priced apart)
                    "model": "llama-3.1-70b",
                    "input_tokens": "1000000",
                    "cached_tokens": "0",
                    "uncached_input_tokens": "1000000",
                    "output_tokens": "250000",
                },
            )
        )
    Ingestor(api_key=collector, now=NOW).ingest(events)
    rollup_pending()
    from tenancy.models import Org

    org = Org.objects.get(slug="acme")
    org_rate(org=org, as_of=datetime(2026, 11, 3, tzinfo=UTC))
    return org


def member(org, role):
    user = UserFactory.create()
    MembershipFactory.create(org=org, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_owner_sees_cost_charts_tokens_credits_and_keys(acme):
    page = member(acme, Membership.Role.OWNER).get("/portal/").content.decode()

    assert "Acme AI SAS" in page
    assert "Cost so far" in page
    assert "Usage per day" in page
    assert "Cost per day" in page
    # cost per day; usage per day in GPU-hours and in tokens; reserved vs used
    assert page.count("<svg") == 4
    assert "2 burst hour" not in page  # 48 burst hours: 10 used against 8 reserved
    assert "48 burst hours" in page
    assert "llama-3.1-70b" in page
    assert "48\u202f000\u202f000" in page  # input tokens, grouped the French way (acme is FR)
    assert "excl. VAT" in page
    assert "welcome" in page
    assert "Create key" in page


def test_usage_csv_lists_daily_billing_units(acme):
    response = member(acme, Membership.Role.VIEWER).get("/portal/usage.csv")

    lines = response.content.decode().splitlines()
    assert response["Content-Type"] == "text/csv"
    assert lines[0] == "date,product,name,unit,quantity,amount_excl_vat,currency"
    h100 = [r for r in csv.reader(lines) if r[1] == "h100-eu-north"]
    assert [r[0] for r in h100] == ["2026-11-01", "2026-11-02"]
    assert [(r[4], r[6]) for r in h100] == [("240", "USD"), ("240", "USD")]
    # Each day: 8 GPUs × 24 h reserved at 2.10 and 2 GPUs × 24 h burst at 2.40 (in cents).
    assert [r[5] for r in h100] == ["518.40", "518.40"]


def test_viewer_sees_but_cannot_manage_keys(acme):
    viewer = member(acme, Membership.Role.VIEWER)

    page = viewer.get("/portal/").content.decode()
    created = viewer.post("/portal/keys", {"org": "acme", "name": "x", "scope": "read"})

    assert "Create key" not in page
    assert created.status_code == 403
    assert not ApiKey.objects.filter(name="x").exists()


def test_owner_creates_a_key_shown_once_and_revokes_it(acme):
    owner = member(acme, Membership.Role.OWNER)

    created = owner.post("/portal/keys", {"org": "acme", "name": "ci", "scope": "read"})
    key = ApiKey.objects.get(name="ci")
    again = owner.get("/portal/").content.decode()
    revoked = owner.post(f"/portal/keys/{key.pk}/revoke", {"org": "acme"})

    assert f"tsk_{key.prefix}_" in created.content.decode()
    assert created.content.decode().count("tsk_") == 1
    assert f"tsk_{key.prefix}_…" in again  # only the prefix afterwards
    assert revoked.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_a_customer_never_sees_another_org(acme):
    globex = OrgFactory.create(slug="globex")
    other_key = api_key_create(name="theirs", org=globex, scope="read").api_key
    client = member(acme, Membership.Role.OWNER)

    assert client.get("/portal/?org=globex").status_code == 403
    assert client.get("/portal/usage.csv?org=globex").status_code == 403
    assert client.post(f"/portal/keys/{other_key.pk}/revoke", {"org": "acme"}).status_code == 403
    assert client.post(f"/portal/keys/{other_key.pk}/revoke", {"org": "globex"}).status_code == 403
    other_key.refresh_from_db()
    assert other_key.revoked_at is None


def test_periods_of_another_org_are_refused(acme):
    from billing.models import BillingPeriod
    from tenancy.models import Org

    org_rate(org=Org.objects.get(slug="sakura"), as_of=datetime(2026, 11, 20, tzinfo=UTC))
    globex_period = BillingPeriod.objects.exclude(org=acme).first()
    client = member(acme, Membership.Role.VIEWER)

    assert globex_period is not None
    assert client.get(f"/portal/?period={globex_period.pk}").status_code == 403


@pytest.mark.parametrize("path", ["/portal/", "/portal/usage.csv"])
def test_staff_without_membership_get_403_and_anonymous_go_to_login(acme, path):
    finance = Client()
    finance.force_login(staff_user_create(username="fin", role="finance"))

    assert finance.get(path).status_code == 403
    assert Client().get(path).status_code == 302


def test_stacked_reservations_show_as_one_chart_of_the_stack(acme):
    # given an expansion of 4 more H100 from Nov 2nd, added to acme-2026 as an amendment
    from billing.models import Contract, Product
    from billing.services import ReservationTerm, contract_amend

    contract = Contract.objects.get(org=acme, key="acme-2026")
    contract_amend(
        contract=contract,
        reservations=[
            ReservationTerm(
                product=Product.objects.get(key="h100-eu-north"),
                quantity=Decimal(4),
                unit_price=Decimal("2.00"),
                start=date(2026, 11, 2),
                end=date(2027, 11, 1),
            )
        ],
        prices=[],
        summary="+4 H100 from 2026-11-02",
    )
    org_rate(org=acme, as_of=datetime(2026, 11, 3, tzinfo=UTC))

    page = member(acme, Membership.Role.OWNER).get("/portal/").content.decode()

    # 10 used: 2 above the 8 reserved for 24 h, none above 12 after
    assert page.count("<svg") == 4  # cost; usage in GPU-hours and tokens; both reservations
    assert "24 burst hours" in page
    assert "2 reservations stacked" in page
    assert "8 reserved from 2026-11-01" in page
    assert "+4 reserved from 2026-11-02 (amendment)" in page
