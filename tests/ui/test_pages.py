"""The web UI in a real Chromium, against a controller running the sample DAGs on the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.base.states import RunType
from controller.store import DagRunRecord
from tests.ui.browser import Browser
from tests.ui.site import Site, api, wait_run

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
    # Read in one step: the list redraws as the scheduled runs' states change, and an
    # element held across a redraw is stale.
    states = dict(
        ui.snapshot("tr[data-dag]", "[e.dataset.dag, e.querySelector('.badge')?.dataset.state]")
    )
    assert states == {record.name: "active" for record in site.dags()}
    assert {"etl-orders", "partner-import", "train-model"} <= set(states)
    good = site.dags()[0].revision
    site.push({"etl-orders.yaml": BROKEN})
    text = ui.wait(
        lambda: (
            shown if "keeps running" in (shown := ui.text("[data-invalid='etl-orders']")) else None
        ),
        what="the invalid DAG's error",
    )
    assert "sample-dags/etl-orders.yaml:9:" in text
    assert "nowhere" in text
    assert f"the version from {good[:12]} keeps running" in text


def trigger_from_the_dag_page(ui: Browser, dag: str, *, reload: bool = True) -> int:
    """Trigger a run with the form's params; returns the run the page moved to."""
    if reload:
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
    return dict(ui.snapshot("#graph .node", "[e.dataset.task, e.dataset.state]"))


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

    # From the keyboard alone: Tab to the failed task's node, Enter opens its tries.
    ui.tab_to(".node[data-task='validate-files']")
    ui.press_enter()
    ui.wait(lambda: "task failure" in ui.text("#tries") or None, what="the failed try")

    ui.go("/dags/partner-import")
    cell = f"tr[data-task='validate-files'] a[data-run='{run_id}']"
    assert ui.wait(lambda: ui.attribute(cell, "data-state"), what=cell) == "failed"
    assert ui.attribute(f"th a[data-run='{run_id}'] .cell", "data-state") == "failed"


# Prints a line, then waits until the test has seen it in the browser before the next:
# a page that buffered the log instead of streaming it would stall the task.
TALK = """\
import pathlib, sys, time

gate = pathlib.Path(sys.argv[1])
for number in range(2):
    print(f"line {number}", flush=True)
    deadline = time.monotonic() + 60
    while not (gate / f"ack-{number}").exists():
        if time.monotonic() > deadline:
            sys.exit(f"nobody acknowledged line {number}")
        time.sleep(0.05)
print("done", flush=True)
"""

TALK_DAG = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata: {{name: talk}}
spec:
  defaults: {{image: python:3.12-slim}}
  tasks:
    - name: talk
      command: [python3, talk.py, "{gate}"]
"""


def test_a_running_tasks_log_streams_into_the_page(ui: Browser, site: Site, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    site.push({"talk.py": TALK, "talk.yaml": TALK_DAG.format(gate=gate)})
    run_id = api(site, "POST", "/dags/talk/trigger", {})["id"]
    ui.open(f"/runs/{run_id}/tasks/talk/0")
    for number in range(2):
        ui.wait(lambda n=number: f"line {n}" in ui.text("#log") or None, what=f"line {number}")
        assert ui.attribute("#log", "data-live") == "true"
        assert f"line {number + 1}" not in ui.text("#log")
        (gate / f"ack-{number}").touch()
    ui.wait(lambda: "done" in ui.text("#log") or None, what="the last line")
    # Once the try is finished the page shows the log store's copy in place of the stream.
    stored = ui.wait(
        lambda: (ui.text("#log-status") == "complete" and ui.text("#log")) or None,
        what="the stored log",
    )
    assert stored.splitlines() == ["line 0", "line 1", "done"]
    assert wait_run(site, run_id) == "succeeded"


def test_an_action_without_a_token_is_refused(ui: Browser, site: Site) -> None:
    ui.open("/dags/etl-orders")
    assert ui.text("#token-status") == "read-only"
    assert ui.act("button[data-action='trigger']").startswith("Refused (401)")
    assert ui.act("button[data-action='pause']").startswith("Refused (401)")
    with site.controller.store.transaction() as uow:
        runs = uow.list_runs(dag_name="etl-orders")
        record = uow.get_dag("etl-orders")
    assert [run for run in runs if run.run_type is RunType.MANUAL] == []
    assert record is not None
    assert not record.paused


def test_a_trigger_sends_the_params_typed_as_the_dag_declares(ui: Browser, site: Site) -> None:
    ui.open("/")
    ui.set_token(site.token)
    ui.go("/dags/train-model")
    epochs = ui.find("#param-epochs")
    epochs.clear()
    epochs.send_keys("3")
    run_id = trigger_from_the_dag_page(ui, "train-model", reload=False)
    assert api(site, "GET", f"/runs/{run_id}")["params"] == {"epochs": 3, "threshold": 0.5}
    shown = ui.wait(lambda: "epochs" in (text := ui.text("#run-head")) and text, what="params")
    assert '"epochs":3' in shown


WAIT_DAG = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata: {{name: {name}}}
spec:
  defaults: {{image: python:3.12-slim}}
  tasks:
    - name: work
      command: [python3, -c, "{script}", "{gate}"]
      retries: {{limit: 0}}
"""
# Waits (at most two minutes) for the test to create the gate's `go` file.
WAITS = (
    "import pathlib, sys, time; gate = pathlib.Path(sys.argv[1]); "
    "deadline = time.monotonic() + 120; "
    "[time.sleep(0.1) for _ in iter(lambda: (gate / 'go').exists() "
    "or time.monotonic() > deadline, True)]"
)
# Fails until the test has created the gate's `fixed` file.
FAILS_UNTIL_FIXED = (
    "import pathlib, sys; sys.exit(0 if (pathlib.Path(sys.argv[1]) / 'fixed').exists() else 1)"
)


def test_cancel_from_the_run_page_stops_a_running_run(
    ui: Browser, site: Site, tmp_path: Path
) -> None:
    site.push({"waits.yaml": WAIT_DAG.format(name="waits", script=WAITS, gate=tmp_path)})
    run_id = api(site, "POST", "/dags/waits/trigger", {})["id"]
    ui.open("/")
    ui.set_token(site.token)
    ui.go(f"/runs/{run_id}")
    ui.wait(lambda: graph_states(ui).get("work") == "running" or None, what="the task to run")
    assert ui.act("button[data-action='cancel']")
    ui.wait(lambda: run_state(ui) == "cancelled" or None, what="the run to be cancelled")
    ui.wait(lambda: graph_states(ui) == {"work": "cancelled"} or None, what="the task cancelled")
    assert api(site, "GET", f"/runs/{run_id}")["state"] == "cancelled"
    assert not ui.all("button[data-action='cancel']")


def test_retry_from_the_run_page_runs_the_failed_task_again_to_success(
    ui: Browser, site: Site, tmp_path: Path
) -> None:
    dag = WAIT_DAG.format(name="fixable", script=FAILS_UNTIL_FIXED, gate=tmp_path)
    site.push({"fixable.yaml": dag})
    run_id = api(site, "POST", "/dags/fixable/trigger", {})["id"]
    assert wait_run(site, run_id) == "failed"
    (tmp_path / "fixed").touch()
    ui.open("/")
    ui.set_token(site.token)
    ui.go(f"/runs/{run_id}")
    ui.wait(lambda: run_state(ui) == "failed" or None, what="the failed run")
    assert ui.act("button[data-action='retry']")
    ui.wait(lambda: run_state(ui) == "succeeded" or None, what="the run to succeed", timeout=60)
    assert graph_states(ui) == {"work": "succeeded"}
    ui.go(f"/runs/{run_id}/tasks/work/0")
    rows = ui.wait(
        lambda: (
            ui.snapshot(
                "#tries tr[data-try]", "[e.querySelector('.badge')?.dataset.state, e.innerText]"
            )
            or None
        ),
        what="the tries",
    )
    # The first try's failure stays visible; the retry is a later try, not a rewrite.
    assert (rows[0][0], rows[-1][0]) == ("failed", "succeeded")
    assert "task failure" in rows[0][1]


def test_a_backfill_from_the_dag_page_lists_the_dates_then_creates_their_runs(
    ui: Browser, site: Site
) -> None:
    ui.open("/")
    ui.set_token(site.token)
    ui.go("/dags/etl-orders")
    ui.find("#backfill-form")
    ui.driver.execute_script(
        "document.getElementById('backfill-from').value = '2026-03-01T00:00';"
        "document.getElementById('backfill-to').value = '2026-03-03T23:59';"
    )
    assert ui.act("button[data-action='backfill']").startswith("A backfill would cover 3 date")
    assert backfills(site) == []
    ui.click("#backfill-dry")
    assert ui.act("button[data-action='backfill']").startswith("Backfill created 3 run(s)")
    dates = [run.logical_date.date().isoformat() for run in backfills(site)]
    assert sorted(dates) == ["2026-03-01", "2026-03-02", "2026-03-03"]


def backfills(site: Site) -> list[DagRunRecord]:
    with site.controller.store.transaction() as uow:
        runs = uow.list_runs(dag_name="etl-orders")
    return [run for run in runs if run.run_type is RunType.BACKFILL]


def test_marking_a_failed_task_succeeded_from_its_page_finishes_the_run(
    ui: Browser, site: Site, tmp_path: Path
) -> None:
    dag = WAIT_DAG.format(name="fixable", script=FAILS_UNTIL_FIXED, gate=tmp_path)
    site.push({"fixable.yaml": dag})
    run_id = api(site, "POST", "/dags/fixable/trigger", {})["id"]
    assert wait_run(site, run_id) == "failed"
    ui.open("/")
    ui.set_token(site.token)
    ui.go(f"/runs/{run_id}/tasks/work/0")
    ui.find("#mark-result").send_keys("checked by hand")
    assert ui.act("button[data-action='mark-succeeded']")
    marked = ui.wait(
        lambda: "checked by hand" in (text := ui.text("#tries")) and text, what="the marked result"
    )
    assert "set by api" in marked
    ui.go(f"/runs/{run_id}")
    ui.wait(lambda: run_state(ui) == "succeeded" or None, what="the run to succeed")
