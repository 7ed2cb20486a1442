"""Headless Chromium driven through chromedriver, for the tests of report.html (Debian's chromium and
chromium-driver: tests/install-browser.sh installs them; a machine without them fails these tests, never skips)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # this machine's network is closed: no update or sync connections
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1300,1000",
)


def open_browser(profile: Path):  # noqa: ANN201 - a selenium WebDriver
    """A headless Chromium with its own profile folder, its console log readable (`get_log("browser")`)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("Debian's chromium and chromedriver are needed for the report tests: run tests/install-browser.sh")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def json_island(browser, element_id: str) -> object:  # noqa: ANN001
    """The JSON data island of the page with this id."""
    from selenium.webdriver.common.by import By

    return json.loads(browser.find_element(By.ID, element_id).get_attribute("textContent"))


def point_at(browser, element, x: float, y: float, width: float, height: float) -> None:  # noqa: ANN001
    """Move the pointer over `element` at (x, y) of its own width × height coordinates (a PNG's or an SVG's pixels),
    scrolling it into view first."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    box = browser.execute_script(
        "const e = arguments[0], r = e.getBoundingClientRect();"
        "window.scrollTo(0, r.top + window.scrollY + arguments[1] * r.height - 300);"
        "const s = e.getBoundingClientRect(); return [s.left, s.top, s.width, s.height];",
        element,
        y / height,
    )
    action = ActionBuilder(browser)
    action.pointer_action.move_to_location(int(box[0] + x * box[2] / width), int(box[1] + y * box[3] / height))
    action.perform()


def console_errors(browser) -> list[str]:  # noqa: ANN001
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
