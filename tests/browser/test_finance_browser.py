import pytest
from selenium.webdriver.common.by import By

from billing.invoicing.models import Invoice
from tenancy.models import Membership
from tenancy.services import staff_user_create

from ..billing.invoicing.conftest import rated_period, worked_charges, world  # noqa: F401
from ..factories import MembershipFactory, UserFactory
from .conftest import login, shoot, wait_for_page

# Finalized invoices refuse DELETE by trigger; SQLite flushes between transactional tests with
# DELETE (PostgreSQL with TRUNCATE), so this walk runs on PostgreSQL only.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_finance_closes_a_period_finalizes_and_the_customer_downloads_the_pdf(
    browser,
    live_server,
    world,  # noqa: F811
):
    period = rated_period(world, slug="acme", charges=worked_charges(world))
    staff_user_create(username="fin", role="finance", password="fin-pass-1234")
    ada = UserFactory.create(username="ada")
    MembershipFactory.create(user=ada, org=period.org, role=Membership.Role.OWNER)

    login(browser, live_server.url, "fin", "fin-pass-1234")
    assert browser.current_url.endswith("/finance/")
    shoot(browser, "finance-dashboard")
    browser.find_element(By.XPATH, "//button[starts-with(text(), 'Close periods')]").click()
    wait_for_page(browser, lambda d: "Drafted 1 invoice" in d.page_source)
    browser.get(f"{live_server.url}/finance/invoices/?status=draft")
    browser.find_element(By.CSS_SELECTOR, "input[name=invoice]").click()
    browser.find_element(By.XPATH, "//button[text()='Finalize selected drafts']").click()
    wait_for_page(browser, lambda d: "Finalized 1" in d.page_source)
    invoice = Invoice.objects.get()
    assert invoice.number == "TFR-2026-000001"
    browser.get(f"{live_server.url}/finance/invoices/{invoice.pk}/")
    shoot(browser, "finance-invoice")

    browser.delete_all_cookies()
    login(browser, live_server.url, "ada", "pw-for-tests-only")
    browser.get(f"{live_server.url}/portal/?period={period.pk}")
    shoot(browser, "portal-invoices")
    link = browser.find_element(By.LINK_TEXT, "PDF")
    href = link.get_attribute("href")
    assert href.endswith(f"/api/v1/invoices/{invoice.pk}/pdf")
    # Chromium's viewer shows PDFs inline; fetch it with the browser's own session instead.
    pdf = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.arrayBuffer())"
        ".then(b => done(Array.from(new Uint8Array(b.slice(0, 5)))));",
        href,
    )
    assert bytes(pdf) == b"%PDF-"
