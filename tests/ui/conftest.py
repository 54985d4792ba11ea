"""Fixtures for browser tests: Debian's Chromium, driven through Selenium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.metrics import Metrics
from controller.process.http import HttpServer
from tests.ui.browser import Browser, chromium, missing


@pytest.fixture(scope="session")
def browser_available() -> None:
    reason = missing()
    if reason is not None:
        pytest.fail(f"the browser tests need Debian's Chromium: {reason} (make test installs it)")


@pytest.fixture(scope="module")
def static_server() -> Iterator[HttpServer]:
    """The controller's HTTP server with no API behind it: the UI's files only."""
    server = HttpServer(metrics=Metrics(), host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def static_browser(browser_available: None, static_server: HttpServer) -> Iterator[Browser]:
    with chromium(f"http://127.0.0.1:{static_server.port}") as browser:
        browser.open("/")
        yield browser
