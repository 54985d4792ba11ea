"""The web UI in a real Chromium, against a controller running the sample DAGs on the cluster."""

from __future__ import annotations

import pytest

from tests.ui.browser import Browser
from tests.ui.site import Site

pytestmark = [pytest.mark.cluster]

BROKEN = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata: {name: etl-orders}
spec:
  tasks:
    - name: extract
      image: python:3.12-slim
      command: [python3, jobs/extract.py]
      dependsOn: [nowhere]
"""


def test_the_dag_list_shows_each_dags_state_and_why_an_invalid_one_is(
    ui: Browser, site: Site
) -> None:
    ui.open("/")
    ui.find("tr[data-dag='partner-import']")
    states = {
        row.get_attribute("data-dag"): row.find_element("css selector", ".badge").get_attribute(
            "data-state"
        )
        for row in ui.all("tr[data-dag]")
    }
    assert states == {
        "customer-backfill": "active",
        "etl-orders": "active",
        "hourly-report": "active",
        "partner-import": "active",
        "train-model": "active",
    }
    good = site.dags()[0].revision
    site.push({"etl-orders.yaml": BROKEN})
    problem = ui.find("[data-invalid='etl-orders']")
    text = ui.wait(lambda: problem.text if "keeps running" in problem.text else None, what="error")
    assert "sample-dags/etl-orders.yaml:9:" in text
    assert "nowhere" in text
    assert f"the version from {good[:12]} keeps running" in text


def trigger_from_the_dag_page(ui: Browser, dag: str) -> int:
    """Trigger a run with the form's params; returns the run the page moved to."""
    ui.open(f"/dags/{dag}")
    ui.click("button[data-action='trigger']")
    ui.confirm()
    route = ui.wait(
        lambda: (
            ui.driver.execute_script("return location.hash").removeprefix("#/runs/") or None
            if ui.driver.execute_script("return location.hash").startswith("#/runs/")
            else None
        ),
        what="the new run's page",
    )
    return int(route)


def run_state(ui: Browser) -> str | None:
    return ui.attribute("#run-state", "data-state")


def graph_states(ui: Browser) -> dict[str, str]:
    return {
        str(node.get_attribute("data-task")): str(node.get_attribute("data-state"))
        for node in ui.all("#graph .node")
    }


def test_a_run_triggered_from_the_ui_shows_its_graph_states_and_trigger_rules(
    ui: Browser, site: Site
) -> None:
    ui.open("/")
    ui.set_token(site.token)
    run_id = trigger_from_the_dag_page(ui, "partner-import")
    ui.wait(lambda: run_state(ui) == "failed" or None, what="the run to fail", timeout=90)
    assert ui.wait(
        lambda: (states := graph_states(ui)).get("cleanup") == "succeeded" and states,
        what="the graph's final states",
    ) == {
        "fetch-files": "succeeded",
        "validate-files": "failed",
        "publish": "upstream_failed",
        "notify-failure": "succeeded",
        "cleanup": "succeeded",
    }
    assert "trigger rule oneFailed" in str(
        ui.attribute(".node[data-task='notify-failure']", "aria-label")
    )
    assert ui.all(".edge.rule[data-to='cleanup']")
    assert not ui.all(".edge.rule[data-to='publish']")

    ui.go("/dags/partner-import")
    cell = ui.find(f"tr[data-task='validate-files'] a[data-run='{run_id}']")
    assert cell.get_attribute("data-state") == "failed"
    assert ui.attribute(f"th a[data-run='{run_id}'] .cell", "data-state") == "failed"
