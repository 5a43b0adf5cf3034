from pathlib import Path

import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from billing.catalog import load_catalog
from billing.deals.models import Deal
from tenancy.services import staff_user_create

from .conftest import login, shoot, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-catalog.yaml"


@pytest.fixture
def cloud():
    staff_user_create(username="demo-am", role="account_manager", password="am-pass-1234")
    staff_user_create(username="fin", role="finance", password="fin-pass-1234")
    load_catalog(yaml.safe_load(DEMO.read_text()))


def test_account_manager_drafts_simulates_and_submits_then_finance_approves_and_signs(
    browser, live_server, cloud
):
    login(browser, live_server.url, "demo-am", "am-pass-1234")
    assert browser.current_url.endswith("/deals/")
    browser.get(f"{live_server.url}/deals/new/")
    # Hooli's current contract ends 2027-09-01: the deal takes over from there.
    Select(browser.find_element(By.NAME, "org")).select_by_visible_text("hooli")
    Select(browser.find_element(By.NAME, "rate_card")).select_by_value("list-eur-2026")
    Select(browser.find_element(By.NAME, "lines-0-product")).select_by_visible_text("h100-eu-north")
    browser.find_element(By.NAME, "lines-0-quantity").send_keys("48")
    browser.execute_script("document.getElementsByName('lines-0-start')[0].value = '2027-09-01'")
    browser.find_element(By.NAME, "lines-0-term_months").send_keys("12")
    browser.find_element(By.NAME, "lines-0-unit_price").send_keys("1.95")
    browser.find_element(By.NAME, "lines-0-ramp").send_keys("2027-11-01:96")
    shoot(browser, "deals-form")
    browser.find_element(By.XPATH, "//button[text()='Save draft']").click()
    wait_until(browser, lambda d: "Total contract value" in d.page_source)

    deal = Deal.objects.get()
    assert browser.current_url.endswith(f"/deals/{deal.pk}/")
    assert "Total contract value" in browser.page_source
    browser.find_element(By.CSS_SELECTOR, "input[name=months]").clear()
    browser.find_element(By.CSS_SELECTOR, "input[name=months]").send_keys("2")
    browser.find_element(By.XPATH, "//button[text()='Simulate']").click()
    wait_until(browser, lambda d: "months=2" in d.current_url)
    shoot(browser, "deals-detail-draft")
    browser.find_element(By.XPATH, "//button[text()='Submit']").click()
    wait_until(browser, lambda d: "Pending approval" in d.page_source or "pending" in d.page_source)
    deal.refresh_from_db()
    assert deal.status == "pending_approval"  # 15.2% below list (2.30 EUR): finance approves
    browser.get(f"{live_server.url}/deals/capacity/")
    shoot(browser, "deals-capacity")

    browser.delete_all_cookies()
    login(browser, live_server.url, "fin", "fin-pass-1234")
    browser.get(f"{live_server.url}/deals/{deal.pk}/")
    browser.find_element(By.NAME, "comment").send_keys("Strategic account, approved.")
    browser.find_element(By.XPATH, "//button[text()='Approve']").click()
    wait_until(
        browser, lambda d: d.find_elements(By.XPATH, "//button[text()='Sign and create contract']")
    )
    browser.find_element(By.XPATH, "//button[text()='Sign and create contract']").click()
    wait_until(
        browser,
        lambda d: not d.find_elements(By.XPATH, "//button[text()='Sign and create contract']"),
    )
    shoot(browser, "deals-detail-signed")

    deal.refresh_from_db()
    assert deal.status == "signed"
    assert deal.contract is not None
    assert deal.contract.reservations.get().quantity == 48
