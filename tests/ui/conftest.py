"""Fixtures for browser tests: Debian's Chromium, driven through Selenium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.devcluster import LocalCluster
from controller.metrics import Metrics
from controller.nodeagent.handle import NodeAgentHandle
from controller.process.http import HttpServer
from tests.fixtures.cluster import ExternalCluster
from tests.ui.browser import Browser, chromium, missing
from tests.ui.site import Site, start_site


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


@pytest.fixture
def site(
    tmp_path: Path,
    cluster: LocalCluster | ExternalCluster,
    namespace: str,
    node_agent: NodeAgentHandle,
) -> Iterator[Site]:
    """A controller on the local cluster following the sample DAGs, serving the UI."""
    site = start_site(root=tmp_path, kubeconfig=cluster.kubeconfig, namespace=namespace)
    yield site
    site.controller.stop()


@pytest.fixture
def ui(browser_available: None, site: Site) -> Iterator[Browser]:
    with chromium(site.url) as browser:
        yield browser
