"""Screenshots of every page, from a controller that ran sample DAGs on the local cluster.

`make screenshots` runs this with KUBEDAG_SCREENSHOTS=docs/screenshots, which is where
README's picture comes from; in the test suite the files go to a temporary folder and
the test checks that each page rendered what it shows before it was taken.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.ui.browser import PHONE, Browser
from tests.ui.site import Site, api, wait_run

pytestmark = [pytest.mark.cluster]

INVALID = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata: {name: weekly-audit}
spec:
  schedule: "0 7 * * 8"
  tasks:
    - name: audit
      image: python:3.12-slim
      command: [python3, jobs/audit.py, "{{ params.missing }}"]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = Path(os.environ.get("KUBEDAG_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


def shoot(ui: Browser, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    ui.screenshot(str(path))
    return path


def test_every_page_renders_and_is_captured(ui: Browser, site: Site, folder: Path) -> None:
    site.push({"weekly-audit.yaml": INVALID})
    runs = [
        api(site, "POST", "/dags/etl-orders/trigger", {"params": {"region": region}})["id"]
        for region in ("eu", "us")
    ]
    failed = api(site, "POST", "/dags/partner-import/trigger", {})["id"]
    for run_id in (*runs, failed):
        wait_run(site, run_id)
    ui.open("/")
    ui.set_token(site.token)
    ui.find("[data-invalid='weekly-audit']")
    ui.wait(lambda: ui.all("tr[data-dag='etl-orders'] a[href^='#/runs/']") or None, what="runs")
    pictures = [shoot(ui, folder, "dags")]

    ui.go("/dags/etl-orders")
    ui.wait(lambda: len(ui.all("table.grid th a[data-run]")) >= 2 or None, what="the runs")
    pictures.append(shoot(ui, folder, "grid"))

    ui.go(f"/runs/{failed}")
    ui.wait(
        lambda: ui.attribute(".node[data-task='cleanup']", "data-state") == "succeeded" or None,
        what="graph",
    )
    ui.wait(lambda: ui.all("#events tr[data-kind]") or None, what="events")
    pictures.append(shoot(ui, folder, "run"))

    ui.go(f"/runs/{runs[0]}/tasks/load/0")
    ui.wait(lambda: "loaded" in ui.text("#log") or None, what="the stored log")
    pictures.append(shoot(ui, folder, "task"))

    ui.resize(*PHONE)
    ui.go(f"/runs/{failed}")
    ui.find("#graph .node")
    pictures.append(shoot(ui, folder, "phone-run"))
    # At a phone's width only the graph, grid and tables scroll sideways, never the page.
    phone_pages = (
        ("/", "tr[data-dag]"),
        ("/dags/etl-orders", "table.grid td .cell"),
        (f"/runs/{failed}", "#graph .node"),
        (f"/runs/{runs[0]}/tasks/load/0", "#tries tr[data-try]"),
    )
    for route, ready in phone_pages:
        ui.go(route)
        ui.find(ready)
        assert ui.driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        ), route

    for picture in pictures:
        assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), picture
    assert ui.console_errors() == []
