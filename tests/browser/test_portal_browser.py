from datetime import UTC, datetime

import pytest
from selenium.webdriver.common.by import By

from billing.models import BillingPeriod
from tenancy.models import Membership

from ..factories import MembershipFactory, UserFactory
from ..portal.test_portal import acme  # noqa: F401 - the fixture with a rated month
from ..support.waiting import wait_until
from .conftest import login, shoot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _rated_as_of_the_fixture(settings):
    """Committed rollups would otherwise ask for a rating as of today (a later period)."""
    settings.TESSERA_RATE_ON_ROLLUP = False


def test_customer_sees_the_charts_and_downloads_the_usage(browser, live_server, acme):  # noqa: F811
    user = UserFactory.create(username="ada")
    MembershipFactory.create(org=acme, user=user, role=Membership.Role.OWNER)

    login(browser, live_server.url, "ada", "pw-for-tests-only")
    assert browser.current_url.endswith("/portal/")
    # the rated month (by today's clock a later, empty period may have opened since)
    november = BillingPeriod.objects.get(org=acme, start=datetime(2026, 11, 1, tzinfo=UTC))
    browser.get(f"{live_server.url}/portal/?period={november.pk}")
    shoot(browser, "portal-dashboard")

    assert browser.find_element(By.TAG_NAME, "h1").text == "Acme AI SAS"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".panel svg")) == 4
    assert "48 burst hours" in browser.page_source
    browser.find_element(By.LINK_TEXT, "Download CSV").click()
    files = wait_until(
        lambda: list(browser.downloads.glob("*.csv")) if browser.downloads.exists() else []
    )
    assert files, "the CSV was not downloaded"
    assert files[0].read_text().startswith("date,product,name,unit,quantity,amount_excl_vat")


@pytest.fixture
def busy_month(transactional_db, settings):
    """acme halfway through November: 8 H100s reserved, 3 to 12 used by the hour, A100s on
    weekdays, tokens every hour; rated as of the 18th; an alert fired; a webhook endpoint
    with a delivered and a failing delivery."""
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    import yaml

    from billing.alerts.services import alert_create
    from billing.catalog import load_catalog
    from billing.models import Product
    from billing.services import org_rate
    from metering.ingestion import Ingestor
    from metering.rollups import rollup_pending
    from tenancy.models import Org
    from tenancy.services import api_key_create
    from webhooks.services import webhook_endpoint_create

    from ..conftest import make_event
    from ..support.receiver import serve

    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True
    catalog = Path(__file__).resolve().parents[2] / "examples" / "catalog-full.yaml"
    load_catalog(yaml.safe_load(catalog.read_text()))
    org = Org.objects.get(slug="acme")
    start, as_of = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC)
    events = []
    for h in range(17 * 24):
        moment = start + timedelta(hours=h, minutes=5)
        day, hour = divmod(h, 24)
        gpus = 3 + (hour * 7 + day * 3) % 10 if 8 <= hour < 22 else 2 + day % 3
        events.append(
            make_event(
                id=f"h100-{h}",
                time=moment,
                data={"gpu_seconds": str(gpus * 3600), "gpu_model": "H100", "region": "eu-north"},
            )
        )
        if (start + timedelta(days=day)).weekday() < 5 and 9 <= hour < 18:
            events.append(
                make_event(
                    id=f"a100-{h}",
                    time=moment,
                    data={"gpu_seconds": str(4 * 3600), "gpu_model": "A100", "region": "eu-north"},
                )
            )
        events.append(
            make_event(
                id=f"tok-{h}",
                type="llm.tokens",
                source="gw",
                time=moment,
                data={
                    "model": "llama-3.1-70b",
                    "input_tokens": 900_000 + (hour % 9) * 400_000,
                    "cached_tokens": 300_000,
                    "uncached_input_tokens": 600_000 + (hour % 9) * 400_000,
                    "output_tokens": 150_000 + (hour % 5) * 60_000,
                },
            )
        )
    result = Ingestor(api_key=api_key_create(name="c").api_key, now=as_of).ingest(events)
    assert result.rejected == 0, result.errors
    rollup_pending()
    alert_create(org=org, kind="cost_above", threshold="3000", name="Half the budget")
    alert_create(org=org, kind="cost_above", threshold="6000", name="Monthly budget")
    alert_create(org=org, kind="commitment_burn_above", threshold="90")
    product = Product.objects.get(key="h100-eu-north")
    alert_create(
        org=org, kind="reservation_utilization_below", threshold="40", product=product,
        window_hours=168,
    )  # fmt: skip
    receivers = serve()
    receiver = next(receivers)
    webhook_endpoint_create(org=org, url=receiver.url, description="ERP: invoices and alerts")
    owner = UserFactory.create(username="ada", email="ada@acme.example")
    MembershipFactory.create(org=org, user=owner, role=Membership.Role.OWNER)
    org_rate(org=org, as_of=as_of - timedelta(days=8))
    receiver.answer(500)
    org_rate(org=org, as_of=as_of)
    yield org
    receivers.close()


def test_portal_screenshots(browser, live_server, busy_month):
    """The pages a customer uses, shot for docs/img (looked at, not compared)."""
    login(browser, live_server.url, "ada", "pw-for-tests-only")
    shoot(browser, "portal-dashboard-month")
    assert "Cost per day" in browser.page_source
    assert "Forecast to period end" in browser.page_source
    for path, name, expected in (
        ("/portal/prices", "portal-prices", "On-demand prices"),
        ("/portal/alerts", "portal-alerts", "Monthly budget"),
        ("/portal/webhooks", "portal-webhooks", "ERP: invoices and alerts"),
    ):
        browser.get(f"{live_server.url}{path}")
        assert expected in browser.page_source
        shoot(browser, name)
    browser.find_element(By.PARTIAL_LINK_TEXT, "Deliveries").click()
    assert "alert.triggered" in browser.page_source
    shoot(browser, "portal-webhook-deliveries")
