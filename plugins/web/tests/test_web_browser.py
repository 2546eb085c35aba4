"""The dashboard in a real browser: headless Chromium (Debian's chromium and
chromium-driver packages, driven through selenium) against `localqueue web
serve`, on SQLite and on PostgreSQL.

It opens the overview, watches a count change without a reload, opens a
queue and a dead letter, requeues it through the preview, and checks the
store changed. Each page is saved as a screenshot (in the test's temporary
directory, or in $LOCALQUEUE_WEB_SCREENSHOTS: docs/web.md embeds the ones
written with LOCALQUEUE_WEB_SCREENSHOTS=docs/images/web).

Without a browser the tests skip and say how to get one, unless
LOCALQUEUE_REQUIRE_BROWSER=1 (set by `bash scripts/test.sh`, which installs
the packages when missing): then they fail.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localqueue import PersistentQueue
from localqueue.store import State, open_store

pytest_plugins = ["web_fixtures"]

CHROMIUM = os.environ.get("LOCALQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LOCALQUEUE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
HOW_TO_ENABLE = (
    f"no browser for these tests ({CHROMIUM}, {CHROMEDRIVER}): run `bash scripts/test.sh`, "
    "which installs Debian's chromium and chromium-driver when running as root, or "
    "`apt-get install chromium chromium-driver`"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("LOCALQUEUE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LOCALQUEUE_REQUIRE_BROWSER=1 but {HOW_TO_ENABLE}")
        pytest.skip(HOW_TO_ENABLE)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for it
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    chosen = os.environ.get("LOCALQUEUE_WEB_SCREENSHOTS")
    where = Path(chosen) if chosen else tmp_path / "screenshots"
    where.mkdir(parents=True, exist_ok=True)
    return where


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def walk_the_dashboard(browser: Any, store_url: str, served: Any, shots: Path, tag: str) -> None:
    from selenium.webdriver.common.by import By

    def cell(queue: str, index: int) -> str:
        # Read in one script: the live refresh may swap the rows between
        # two WebDriver calls.
        text: str = browser.execute_script(
            "var row = document.querySelector('tr[data-queue=\"' + arguments[0] + '\"]');"
            "return row ? row.cells[arguments[1]].textContent.trim() : '';",
            queue,
            index,
        )
        return text

    def shot(name: str) -> None:
        path = shots / f"{name}.png" if tag == "sqlite" else shots / f"{tag}-{name}.png"
        assert browser.save_screenshot(str(path)), path
        assert path.stat().st_size > 1000

    with served(store_url, "--sample-every", "1") as server:
        # The overview: every queue with its counts.
        browser.get(server.address + "/")
        assert browser.title == "Queues · localqueue"
        assert [cell("emails", i) for i in range(5)] == ["emails", "2", "1", "1", "3"]
        # Another process puts: the row changes without a reload.
        marker = browser.execute_script("window.notReloaded = true; return 1")
        assert marker == 1
        with PersistentQueue("emails", store=store_url) as q:
            q.put({"to": "late@example.com"})
        wait_for(lambda: cell("emails", 1) == "3", "the ready count to refresh in place")
        assert browser.execute_script("return window.notReloaded") is True
        time.sleep(1.5)  # a few samples for the charts
        with PersistentQueue("emails", store=store_url) as q:
            for _ in range(2):  # finished work shows as throughput
                q.ack(q.get(block=False))
        time.sleep(1.5)
        browser.refresh()
        finished = browser.find_element(
            By.CSS_SELECTOR, 'tr[data-queue="emails"] td.throughput'
        ).text
        assert finished.replace(",", "").isdigit() and int(finished) > 0, finished
        shot("overview")

        # One queue, its dead letters, one dead letter.
        browser.find_element(By.LINK_TEXT, "emails").click()
        wait_for(lambda: browser.title.startswith("emails"), "the queue page")
        caption = browser.find_element(By.CSS_SELECTOR, "#throughput figcaption").text
        assert caption.startswith("finished per minute:"), caption
        shot("queue")
        browser.find_element(By.CSS_SELECTOR, "td.dead a, table.counts a").click()
        wait_for(lambda: "dead letters" in browser.title, "the dead letters page")
        groups = browser.find_elements(By.CSS_SELECTOR, "table.groups tbody tr")
        assert [g.find_elements(By.TAG_NAME, "td")[0].text for g in groups] == [
            "TimeoutError",
            "ValueError",
        ]
        shot("dead")
        browser.find_element(By.LINK_TEXT, "#1").click()
        wait_for(lambda: "#1" in browser.title, "the message page")
        page = browser.find_element(By.TAG_NAME, "main").text
        assert "TimeoutError" in page and "Traceback (most recent call last)" in page
        # Markup in the payload and the error shows as text, never runs.
        assert "<script>alert('x')</script>" in page
        assert browser.execute_script("return document.querySelectorAll('main script').length") == 0
        shot("message")

        # Requeue it: preview, confirm, and the store changed.
        browser.find_element(By.XPATH, "//button[contains(., 'requeue this dead letter')]").click()
        wait_for(lambda: browser.title.startswith("Confirm"), "the preview")
        assert browser.find_element(By.ID, "preview-count").text == "1"
        shot("confirm")
        assert open_store_dead(store_url) == [1, 2, 3]  # previewing changed nothing
        browser.find_element(By.XPATH, "//button[contains(., 'requeue these 1')]").click()
        wait_for(lambda: browser.title.startswith("Done"), "the result")
        assert "requeued 1 of the 1 message(s)" in browser.find_element(By.ID, "done").text
        assert open_store_dead(store_url) == [2, 3]
        status, _, err = server.stop()
        assert status == 0, err


def open_store_dead(url: str) -> list[int]:
    store = open_store(url)
    try:
        return [r.id for r in store.list_messages("emails", state=State.DEAD)]
    finally:
        store.close()


def test_the_dashboard_in_a_browser_on_sqlite(
    browser: Any, store_url: str, served: Any, screenshots: Path
) -> None:
    walk_the_dashboard(browser, store_url, served, screenshots, "sqlite")


def test_the_dashboard_in_a_browser_on_postgresql(
    browser: Any, postgres_store_url: str, served: Any, screenshots: Path, fill_store: Any
) -> None:
    fill_store(postgres_store_url)
    walk_the_dashboard(browser, postgres_store_url, served, screenshots, "postgresql")
