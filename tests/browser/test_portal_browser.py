import pytest
from selenium.webdriver.common.by import By

from tenancy.models import Membership

from ..factories import MembershipFactory, UserFactory
from ..portal.test_portal import acme  # noqa: F401 - the fixture with a rated month
from ..support.waiting import wait_until
from .conftest import login, shoot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_rating_on_rollup(settings):
    """The ``acme`` world is as of 3 November 2026. In a transactional test the rollup's
    on-commit rating request runs, and would open the period of the real today: the page
    would then show that (empty) month on any date after November 2026."""
    settings.TESSERA_RATE_ON_ROLLUP = False


def test_customer_sees_the_charts_and_downloads_the_usage(browser, live_server, acme):  # noqa: F811
    user = UserFactory(username="ada")
    MembershipFactory(org=acme, user=user, role=Membership.Role.OWNER)

    login(browser, live_server.url, "ada", "pw-for-tests-only")
    assert browser.current_url.endswith("/portal/")
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
