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


def test_customer_sees_the_charts_and_downloads_the_usage(browser, live_server, acme):  # noqa: F811
    user = UserFactory(username="ada")
    MembershipFactory(org=acme, user=user, role=Membership.Role.OWNER)

    login(browser, live_server.url, "ada", "pw-for-tests-only")
    assert browser.current_url.endswith("/portal/")
    # the rated month (by today's clock a later, empty period may have opened since)
    november = BillingPeriod.objects.get(org=acme, start=datetime(2026, 11, 1, tzinfo=UTC))
    browser.get(f"{live_server.url}/portal/?period={november.pk}")
    shoot(browser, "portal-dashboard")

    assert browser.find_element(By.TAG_NAME, "h1").text == "Acme AI SAS"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".panel svg")) == 3
    assert "48 burst hours" in browser.page_source
    browser.find_element(By.LINK_TEXT, "Download CSV").click()
    files = wait_until(
        lambda: list(browser.downloads.glob("*.csv")) if browser.downloads.exists() else [],
        timeout=20,
    )
    assert files, "the CSV was not downloaded"
    assert files[0].read_text().startswith("date,product,name,unit,quantity")
