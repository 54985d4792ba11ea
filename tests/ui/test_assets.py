"""The UI's files as the controller serves them: every page and module, and nothing else."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.metrics import Metrics
from controller.process.http import HttpServer
from controller.ui import PREFIX, load_assets

STATIC = Path(__file__).resolve().parents[2] / "controller" / "ui" / "static"
IMPORT = re.compile(r"""(?:from|import)\s+["'](\.{1,2}/[^"']+)["']""")


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = HttpServer(metrics=Metrics(), host="127.0.0.1", port=0)
    server.start()
    yield server.port
    server.stop()


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_every_static_file_is_served_under_ui() -> None:
    on_disk = {f"{PREFIX}{p.relative_to(STATIC)}" for p in STATIC.rglob("*") if p.is_file()}
    assert on_disk <= set(load_assets())


def test_every_module_a_script_imports_is_served() -> None:
    assets = load_assets()
    for path in [p for p in assets if p.endswith(".js")]:
        source = assets[path].body.decode()
        base = path.rsplit("/", 1)[0]
        for relative in IMPORT.findall(source):
            target = re.sub(r"/\./", "/", f"{base}/{relative}")
            while "/../" in target:
                target = re.sub(r"/[^/]+/\.\./", "/", target, count=1)
            assert target in assets, f"{path} imports {relative}, which is not served"


def test_the_root_sends_the_browser_to_the_ui(port: int) -> None:
    status, headers, _ = get(port, "/")
    assert (status, headers["Location"]) == (302, PREFIX)


def test_the_index_page_is_served_with_a_strict_content_policy(port: int) -> None:
    status, headers, body = get(port, PREFIX)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b'src="/ui/js/app.js"' in body


def test_modules_are_served_as_javascript(port: int) -> None:
    status, headers, _ = get(port, f"{PREFIX}js/app.js")
    assert status == 200
    assert headers["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "path",
    [
        f"{PREFIX}../http.py",
        f"{PREFIX}%2e%2e/__init__.py",
        f"{PREFIX}js/../../__init__.py",
        f"{PREFIX}nothing.js",
        f"{PREFIX}static/index.html",
    ],
)
def test_a_path_outside_the_static_files_is_not_found(port: int, path: str) -> None:
    status, _, _ = get(port, path)
    assert status == 404
