"""A real headless Chromium, from Debian's chromium and chromium-driver packages, via Selenium.

Nothing is downloaded: the driver is named by path, so Selenium's own driver manager
never runs. Chromium is started with the flags that keep it off the network (no
component updates, no sync, no background requests) and with a fresh profile per
browser, so no test sees another's token or cache.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_LOAD_TIMEOUT = 30
WAIT = 30.0

T = TypeVar("T")

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

LAPTOP = (1366, 900)
PHONE = (390, 844)


def missing() -> str | None:
    """Why no browser can start here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(path) is None:
            return f"{path} is missing: apt-get install {package}"
    return None


class Browser:
    """A Selenium driver with the waits the UI tests need."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, route: str = "/") -> None:
        self.driver.get(f"{self.base_url}/ui/#{route}")

    def go(self, route: str) -> None:
        """Navigate within the page, as a click on a link would."""
        self.driver.execute_script("location.hash = arguments[0]", route)

    def wait(self, condition: Callable[[], T | None], *, what: str, timeout: float = WAIT) -> T:
        def check(_: Any) -> T | None:
            try:
                return condition()
            except (StaleElementReferenceException, WebDriverException):
                # The page re-rendered under us; the next poll reads the new element.
                return None

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
            check, message=f"waiting for {what}"
        )

    def find(self, css: str) -> WebElement:
        return self.wait(lambda: self._first(css), what=css)

    def _first(self, css: str) -> WebElement | None:
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else None

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def snapshot(self, css: str, expression: str) -> list[Any]:
        """`expression`, JavaScript over the element `e`, for each element matching `css`,
        read in one step: a page that redraws between two reads cannot split it."""
        found = self.driver.execute_script(
            f"return [...document.querySelectorAll(arguments[0])].map(e => {expression})", css
        )
        return list(found)

    def text(self, css: str) -> str:
        return str(
            self.driver.execute_script(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
                css,
            )
            or ""
        )

    def attribute(self, css: str, name: str) -> str | None:
        value = self.driver.execute_script(
            "const e = document.querySelector(arguments[0]);"
            " return e ? e.getAttribute(arguments[1]) : null",
            css,
            name,
        )
        return None if value is None else str(value)

    def click(self, css: str) -> None:
        self.find(css).click()

    def confirm(self) -> None:
        """Answer the confirmation dialog of an action with yes."""
        self.wait(
            lambda: self.driver.execute_script("return document.getElementById('confirm').open"),
            what="the confirmation dialog",
        )
        self.click("#confirm-yes")

    def tab_to(self, css: str, *, limit: int = 80) -> None:
        """Move the focus with the Tab key, as a keyboard user would, until `css` has it."""
        self.driver.execute_script("document.activeElement?.blur()")
        for _ in range(limit):
            self.driver.switch_to.active_element.send_keys(Keys.TAB)
            if self.driver.execute_script(
                "return document.activeElement.matches(arguments[0])", css
            ):
                return
        raise AssertionError(f"{css} was not reached in {limit} presses of Tab")

    def press_enter(self) -> None:
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)

    def act(self, css: str) -> str:
        """Click an action's button, confirm it, and return the message it ends with."""
        self.driver.execute_script("document.getElementById('flash').replaceChildren()")
        self.click(css)
        self.confirm()
        return self.flash()

    def flash(self) -> str:
        return self.wait(lambda: self.text("#flash .flash") or None, what="a message")

    def set_token(self, value: str) -> None:
        field = self.find("#token-input")
        field.clear()
        field.send_keys(value)
        self.click("#token-form button[type=submit]")
        self.wait(lambda: self.text("#token-status") == "token set", what="the token saved")

    def console_errors(self) -> list[str]:
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry.get("level") == "SEVERE"
        ]

    def screenshot(self, path: str) -> None:
        self.driver.save_screenshot(path)

    def resize(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)


@contextmanager
def chromium(base_url: str, *, size: tuple[int, int] = LAPTOP) -> Iterator[Browser]:
    profile = tempfile.mkdtemp(prefix="kubedag-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(PAGE_LOAD_TIMEOUT)
        yield Browser(driver, base_url)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
