from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from billing.catalog import load_catalog
from billing.deals.models import Deal
from billing.invoicing.drafting import periods_close
from billing.services import org_rate
from metering.ingestion import Ingestor
from metering.rollups import rollup_pending
from tenancy.models import Org
from tenancy.services import api_key_create, staff_user_create

from ..conftest import make_event
from .conftest import login, shoot, wait_for_page


def set_date(browser, name: str, value: str) -> None:
    """Chromium's date inputs take typing in the locale's order; set the value instead."""
    browser.execute_script(
        "document.getElementsByName(arguments[0])[0].value = arguments[1]", name, value
    )


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
    # Hooli's current contract ends 2027-09-01: a new contract takes over from there.
    Select(browser.find_element(By.NAME, "org")).select_by_visible_text(
        "Hooli Deutschland GmbH (EUR)"
    )
    # choosing the org offers its contract and the rate cards in its currency
    assert Select(browser.find_element(By.NAME, "rate_card")).first_selected_option.text == (
        "list-eur-2026 (EUR)"
    )
    Select(browser.find_element(By.NAME, "amends")).select_by_visible_text("— a new contract")
    Select(browser.find_element(By.NAME, "lines-0-product")).select_by_visible_text(
        "NVIDIA H100 GPU-hour, eu-north"
    )
    browser.find_element(By.NAME, "lines-0-quantity").send_keys("48")
    set_date(browser, "lines-0-start", "2027-09-01")
    browser.find_element(By.NAME, "lines-0-term_months").send_keys("12")
    browser.find_element(By.NAME, "lines-0-unit_price").send_keys("1.95")
    set_date(browser, "lines-0-ramp_0_from", "2027-11-01")
    browser.find_element(By.NAME, "lines-0-ramp_0_quantity").send_keys("96")
    shoot(browser, "deals-form")
    browser.find_element(By.XPATH, "//button[text()='Save draft']").click()
    wait_for_page(browser, lambda d: "Total contract value" in d.page_source)

    deal = Deal.objects.get()
    assert browser.current_url.endswith(f"/deals/{deal.pk}/")
    assert "Total contract value" in browser.page_source
    browser.find_element(By.CSS_SELECTOR, "input[name=months]").clear()
    browser.find_element(By.CSS_SELECTOR, "input[name=months]").send_keys("2")
    browser.find_element(By.XPATH, "//button[text()='Simulate']").click()
    wait_for_page(browser, lambda d: "months=2" in d.current_url)
    shoot(browser, "deals-detail-draft")
    browser.find_element(By.XPATH, "//button[text()='Submit']").click()
    wait_for_page(
        browser, lambda d: "Pending approval" in d.page_source or "pending" in d.page_source
    )
    deal.refresh_from_db()
    assert deal.status == "pending_approval"  # 15.2% below list (2.30 EUR): finance approves
    browser.get(f"{live_server.url}/deals/capacity/")
    shoot(browser, "deals-capacity")

    browser.delete_all_cookies()
    login(browser, live_server.url, "fin", "fin-pass-1234")
    browser.get(f"{live_server.url}/deals/{deal.pk}/")
    browser.find_element(By.NAME, "comment").send_keys("Strategic account, approved.")
    browser.find_element(By.XPATH, "//button[text()='Approve']").click()
    wait_for_page(
        browser, lambda d: d.find_elements(By.XPATH, "//button[text()='Sign and create contract']")
    )
    browser.find_element(By.XPATH, "//button[text()='Sign and create contract']").click()
    wait_for_page(
        browser,
        lambda d: not d.find_elements(By.XPATH, "//button[text()='Sign and create contract']"),
    )
    shoot(browser, "deals-detail-signed")

    deal.refresh_from_db()
    assert deal.status == "signed"
    assert deal.contract is not None
    assert deal.contract.reservations.get().quantity == 48


NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def running(settings):
    """The demo cloud; acme's running contract acme-2026 reserves 6 H100 in eu-north from
    2026-10-16 at 2.10 (burst 2.40); acme used 7 of them every hour of October and November.
    ``demo-am`` is acme's account manager and also in finance; ``fin`` is finance."""
    settings.TESSERA_RATE_ON_ROLLUP = False
    settings.TESSERA_LATE_WINDOW_DAYS = 120
    staff_user_create(username="demo-am", role="account_manager", password="am-pass-1234")
    staff_user_create(username="demo-am", role="finance")
    staff_user_create(username="fin", role="finance", password="fin-pass-1234")
    load_catalog(yaml.safe_load(DEMO.read_text()))
    events = [
        make_event(
            id=f"acme-{hour}",
            subject="acme",
            time=NOV - timedelta(days=31) + timedelta(hours=hour),
            data={"gpu_seconds": "25200", "gpu_model": "H100", "region": "eu-north"},
        )
        for hour in range(61 * 24)
    ]
    result = Ingestor(api_key=api_key_create(name="collector").api_key, now=DEC).ingest(events)
    assert result.accepted == len(events)
    rollup_pending()


def test_an_expansion_is_drafted_simulated_approved_by_another_finance_user_and_invoiced(
    browser, live_server, running
):
    login(browser, live_server.url, "demo-am", "am-pass-1234")
    browser.get(f"{live_server.url}/deals/new/")
    # the form opens on acme, amending its running contract, on its rate card: names, not keys
    assert Select(browser.find_element(By.NAME, "org")).first_selected_option.text == (
        "Acme AI SAS (USD)"
    )
    amends = Select(browser.find_element(By.NAME, "amends")).first_selected_option.text
    assert amends == "acme-2026 · 2026-09-01 to 2027-08-31"
    Select(browser.find_element(By.NAME, "lines-0-product")).select_by_visible_text(
        "NVIDIA H100 GPU-hour, eu-north"
    )
    browser.find_element(By.NAME, "lines-0-quantity").send_keys("2")
    set_date(browser, "lines-0-start", "2026-11-11")
    browser.find_element(By.NAME, "lines-0-term_months").send_keys("12")
    browser.find_element(By.NAME, "lines-0-unit_price").send_keys("2.00")
    browser.find_element(By.NAME, "title").send_keys("+2 H100 from the 11th")
    shoot(browser, "deal-form-expansion")
    browser.find_element(By.XPATH, "//button[text()='Save draft']").click()
    wait_for_page(browser, lambda d: "Total contract value" in d.page_source)
    deal = Deal.objects.get()
    assert deal.amends is not None
    assert deal.amends.key == "acme-2026"
    page = browser.page_source
    # co-termed with acme-2026; simulated over the months with usage (October, November)
    assert "2026-11-11 → 2027-09-01 (ends with acme-2026)" in page
    assert "Simulation: 2 months of Acme AI SAS's real usage" in page
    assert "With this amendment" in page
    shoot(browser, "deal-detail-expansion")
    browser.find_element(By.XPATH, "//button[text()='Submit']").click()
    wait_for_page(browser, lambda d: "Pending approval" in d.page_source)

    # demo-am is in finance too, but wrote these terms: refused, and told why
    browser.get(f"{live_server.url}/deals/{deal.pk}/")
    assert "another finance user decides" in browser.find_element(By.ID, "four-eyes").text
    assert not browser.find_elements(By.XPATH, "//button[text()='Approve']")
    browser.execute_script(
        "const f = document.createElement('form'); f.method = 'post';"
        "f.action = arguments[0]; const t = document.createElement('input');"
        "t.name = 'csrfmiddlewaretoken';"
        "t.value = document.querySelector('[name=csrfmiddlewaretoken]').value;"
        "f.appendChild(t); document.body.appendChild(f); f.submit();",
        f"/deals/{deal.pk}/approve/",
    )
    wait_for_page(browser, lambda d: "so you cannot approve it" in d.page_source)
    shoot(browser, "deal-four-eyes")
    deal.refresh_from_db()
    assert deal.status == Deal.Status.PENDING_APPROVAL

    browser.delete_all_cookies()
    login(browser, live_server.url, "fin", "fin-pass-1234")
    browser.get(f"{live_server.url}/deals/{deal.pk}/")
    browser.find_element(By.NAME, "comment").send_keys("Expansion at 2.00, approved.")
    browser.find_element(By.XPATH, "//button[text()='Approve']").click()
    sign = "//button[text()='Sign and amend acme-2026']"
    wait_for_page(browser, lambda d: d.find_elements(By.XPATH, sign))
    browser.find_element(By.XPATH, sign).click()
    wait_for_page(browser, lambda d: "Signed: contract acme-2026 amended." in d.page_source)
    quote = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.arrayBuffer())"
        ".then(b => done(Array.from(new Uint8Array(b.slice(0, 5)))));",
        f"/deals/{deal.pk}/quote.pdf",
    )
    assert bytes(quote) == b"%PDF-"
    browser.find_element(By.LINK_TEXT, "Amended acme-2026").click()
    wait_for_page(browser, lambda d: "Amendments" in d.page_source)
    assert f"deal {deal.pk}" in browser.page_source
    shoot(browser, "contract-amended")

    # November is billed: both reservations, each at its own price
    org_rate(org=Org.objects.get(slug="acme"), as_of=DEC)
    drafted = periods_close(as_of=datetime(2026, 12, 3, tzinfo=UTC)).drafted
    (november,) = [i for i in drafted if i.period_start == NOV]
    browser.get(f"{live_server.url}/finance/invoices/{november.pk}/")
    page = browser.page_source
    assert "6 reserved 2026-11-01 to 2026-11-30" in page
    assert "2 reserved 2026-11-11 to 2026-11-30 (amendment)" in page
    lines = {(line.kind, line.amount) for line in november.lines.all() if line.kind != "covered"}
    # 6 × 720 h × 2.10; 2 × 480 h × 2.00; 1 GPU above 6 for 240 h at 2.40
    assert lines == {
        ("reservation", Decimal("9072.00")),
        ("reservation", Decimal("1920.00")),
        ("burst", Decimal("576.00")),
    }
    shoot(browser, "invoice-expansion")
