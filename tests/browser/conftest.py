"""Real headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

Screenshots of every page a test visits land in ``screenshots/`` (git-ignored) to be looked at.
"""

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.remote.webdriver import WebDriver

from ..support.waiting import DEFAULT_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


class Browser(Chrome):
    """Chromium that also names the folder its downloads land in."""

    downloads: Path


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1800",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(tmp_path / "downloads")}
    )
    driver = Browser(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.downloads = tmp_path / "downloads"
    yield driver
    driver.quit()


def shoot(driver: WebDriver, name: str) -> Path:
    """Full-page screenshot (the window is resized to the page's height first)."""
    SHOTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, min(int(height) + 40, 6000)))
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def login(driver: WebDriver, base_url: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/accounts/login/")
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for_page(driver, lambda d: "/accounts/login/" not in d.current_url)


def wait_for_page(
    driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Clicks return before the next page has loaded: wait for what the test expects (the
    browser's form of ``tests.support.waiting.wait_until``, with its deadline)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(condition)
