"""The web console in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium): log in,
trigger a run and watch it reach SUCCESS without reloading, cancel a hanging run. Screenshots of each step are kept
in .local/test/artifacts/console/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.e2e.conftest import ADMIN_KEY, ROOT, Client, Stack, postgres_integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / ".local" / "test" / "artifacts" / "console"
# A page marker set once: still there at the end means the page was never reloaded (only htmx swapped parts).
MARK = "window.__consoleMark = 'not reloaded'"
MARKED = "return window.__consoleMark"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        missing = f"{CHROMIUM} and {CHROMEDRIVER} are required: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):  # .ci/run installs them: their absence there is a failure, not a skip
            pytest.fail(missing)
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1200,720", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(argument)
    # The driver's path is given: selenium never looks for (or downloads) a driver of its own.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: WebDriver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_for_text(driver: WebDriver, css: str, text: str, timeout: float = 45) -> None:
    present = expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)
    WebDriverWait(driver, timeout).until(present)


def log_in(driver: WebDriver, stack: Stack) -> None:
    driver.delete_all_cookies()
    driver.get(stack.url + "/console")
    WebDriverWait(driver, 20).until(expected_conditions.presence_of_element_located((By.ID, "api_key")))
    driver.find_element(By.ID, "api_key").send_keys(ADMIN_KEY)
    driver.find_element(By.ID, "login").click()
    wait_for_text(driver, "h1", "Integrations")
    assert driver.get_cookie("icp_console")["httpOnly"] is True


def click_in_row(driver: WebDriver, external_id: str, button: str) -> None:
    driver.get(driver.current_url.split("/console")[0] + "/console/")
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-integration="{external_id}"]')
    submit_and_wait_for_the_next_page(driver, row.find_element(By.CSS_SELECTOR, f"button.{button}"))


def submit_and_wait_for_the_next_page(driver: WebDriver, button: WebElement) -> None:
    """Click a form's button and wait until the page it leads to has loaded (the old one is gone)."""
    old = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


async def test_log_in_run_and_watch_the_run_reach_success_without_reloading(
    browser: WebDriver, stack: Stack, client: Client, shop_dsn: str
) -> None:
    nightly = {"schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}, "name": "Shop database"}
    status, _, _ = await client.call("POST", "/api/integrations",
                                     json=postgres_integration(shop_dsn, "console-e2e", **nightly))  # fmt: skip
    assert status == 201
    log_in(browser, stack)
    wait_for_text(browser, 'tr[data-integration="console-e2e"]', "next in")
    shot(browser, "01-integrations")
    # The crawl waits on a locked view until the page is open: the page sees the run while it runs, then SUCCESS.
    locker = await asyncpg.connect(shop_dsn)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE sales.big_orders IN ACCESS EXCLUSIVE MODE")
            click_in_row(browser, "console-e2e", "run")
            assert "/console/integrations/console-e2e/runs/" in browser.current_url
            browser.execute_script(MARK)
            wait_for_text(browser, "#live .summary", "RUNNING")
    finally:
        await locker.close()
    wait_for_text(browser, "#live .summary", "SUCCESS")
    wait_for_text(browser, "#changes", "created")
    assert browser.execute_script(MARKED) == "not reloaded"
    assert browser.find_element(By.ID, "created").text != "0"
    assert "succeeded" in browser.find_element(By.ID, "timeline").text
    shot(browser, "02-run-success")
    browser.get(stack.url + "/console/")
    wait_for_text(browser, 'tr[data-integration="console-e2e"]', "SUCCESS")
    shot(browser, "03-integrations-after-run")
    if os.environ.get("CONSOLE_README_SCREENSHOT"):  # how docs/console.png was made
        browser.set_window_size(1000, 420)
        shutil.copy(shot(browser, "readme"), ROOT / "docs" / "console.png")
        browser.set_window_size(1200, 720)


async def test_cancel_a_hanging_run_from_its_page(
    browser: WebDriver, stack: Stack, client: Client, shop_dsn: str, locked_view: None
) -> None:
    status, _, _ = await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "console-hang"))
    assert status == 201
    log_in(browser, stack)
    click_in_row(browser, "console-hang", "run")
    wait_for_text(browser, "#live .summary", "RUNNING")  # the connector started it; the crawl waits on the lock
    submit_and_wait_for_the_next_page(browser, browser.find_element(By.CSS_SELECTOR, "#live button.cancel"))
    browser.execute_script(MARK)
    wait_for_text(browser, "#live .summary", "CANCELLED")
    assert browser.execute_script(MARKED) == "not reloaded"
    assert browser.find_elements(By.CSS_SELECTOR, "#live button.cancel") == []  # nothing left to cancel
    assert "cancelled" in browser.find_element(By.ID, "timeline").text
    shot(browser, "04-run-cancelled")
    _, latest, _ = await client.call("GET", "/api/integrations/console-hang/runs/latest")
    assert latest["status"] == "CANCELLED"
