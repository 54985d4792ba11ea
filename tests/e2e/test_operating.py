"""Operating runs on the real control plane, through the CLI and the API: cancel, retry."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import kubernetes.client
import pytest

from controller.base.states import DagRunState, TaskState
from controller.base.tries import TryKey
from controller.cli import main
from controller.cli.run import drive
from controller.devcluster import LocalCluster
from controller.executor.kubeclient import make_api_client
from controller.executor.podspec import TASK_CONTAINER
from controller.executor.watchstream import list_pods
from controller.logstore import LogKey, LogStore
from controller.process.dagsync import DagSync
from controller.runtime.manual import trigger_run
from controller.runtime.scheduler import Scheduler
from controller.settings.loading import load_config
from controller.spec.model import Dag
from controller.store import Store
from controller.ui.endpoints import UiEndpoints
from tests.e2e.crashing import SELECTOR, start_controller
from tests.e2e.harness import scripted, task, wait_for
from tests.e2e.podaudit import PodAudit
from tests.e2e.repo import Repository
from tests.runtime.support import store_dag

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

ITEMS = 3
TOKEN = "operator-token"
LONG = Dag(
    name="long",
    max_active_tasks=ITEMS,
    tasks=(
        task(
            "work",
            with_items=tuple(range(ITEMS)),
            overrides=scripted(duration="120", log="started 1\n"),
        ),
        task("after", depends_on=("work",)),
    ),
)


def rows(store: Store, run_id: int) -> list[tuple[str, int, TaskState]]:
    with store.transaction() as uow:
        return [(r.task_name, r.try_number, r.state) for r in uow.list_task_instances(run_id)]


@pytest.mark.parametrize("killed", [False, True], ids=["controller-up", "killed-after-request"])
def test_cancel_while_pods_run_deletes_them_keeps_their_logs_and_relaunches_nothing(
    killed: bool,
    controller_env: dict[str, str],
    e2e_store: Store,
    local_cluster: LocalCluster,
    namespace: str,
    tmp_path: Path,
) -> None:
    store_dag(e2e_store, LONG)
    run = trigger_run(e2e_store, dag_name="long", params={})
    env = {**controller_env, "KUBEDAG_TEST_UNTIL_PODS_GONE": "1"}
    log = tmp_path / "controller.log"
    with make_api_client(kubeconfig=str(local_cluster.kubeconfig)) as api:
        audit = PodAudit(api, namespace, label_selector=SELECTOR)
        try:
            first = start_controller(env, log)
            wait_for(
                lambda: (
                    [state for _, _, state in rows(e2e_store, run.id)]
                    == [TaskState.RUNNING] * ITEMS
                ),
                timeout=60,
                what="every pod of the fan-out to run",
            )
            assert main(["cancel", str(run.id), "--grace-period", "2"]) == 0
            if killed:
                first.send_signal(signal.SIGKILL)
                first.wait(10)
                first = start_controller(env, log)
            assert first.wait(120) == 0, log.read_text()[-3000:]
            pods, _ = list_pods(api, namespace=namespace, label_selector=SELECTOR)
            with e2e_store.transaction() as uow:
                record = uow.get_run(run.id)
                tries = uow.list_task_instances(run.id)
            audit.wait_seen(r.pod_name for r in tries if r.pod_name)
        finally:
            audit.stop()
    assert pods == []
    assert record is not None
    assert record.state is DagRunState.CANCELLED
    assert [(r.task_name, r.try_number, r.state) for r in tries] == [
        ("work", 1, TaskState.CANCELLED)
    ] * ITEMS
    assert all((r.set_by or "").startswith("cli:") for r in tries)
    assert {name: len(uids) for name, uids in audit.uids.items()} == {r.pod_name: 1 for r in tries}
    logs = LogStore(load_config().log_store_location)
    for row in tries:
        key = LogKey(TryKey(run.id, "work", row.item_index, 1), TASK_CONTAINER)
        stored = logs.read(key)
        assert (stored or "").startswith("started 1"), (row, stored)


FIXABLE = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata: {name: fixable}
spec:
  defaults: {image: python:3.12-slim}
  tasks:
    - name: check
      command:
        - python3
        - -c
        - >-
          import sys;
          fixed = open('state.txt').read().strip() == 'fixed';
          up = open(sys.argv[1]).read() == 'up';
          sys.exit(0 if fixed and up else 1)
        - FLAG
    - name: report
      dependsOn: [check]
      command: [python3, -c, "print('reported')"]
"""


@pytest.mark.parametrize("latest", [False, True], ids=["same-commit", "latest"])
def test_a_failed_run_retried_succeeds_pinned_to_its_commit_or_the_newest(
    latest: bool,
    controller_env: dict[str, str],
    repository: Repository,
    e2e_store: Store,
    tmp_path: Path,
) -> None:
    flag = tmp_path / "flag"
    # Without --latest the cause lies outside the repository (a service that was down);
    # with it, the fix is a commit.
    flag.write_text("down" if not latest else "up")
    folder = repository.clone / "fix"
    folder.mkdir()
    (folder / "state.txt").write_text("fixed" if not latest else "broken")
    (folder / "fixable.yaml").write_text(FIXABLE.replace("FLAG", str(flag)))
    first_commit = repository.commit("a script that fails")
    sync = DagSync(e2e_store, dags_path="fix")
    sync.apply_revision(revision=first_commit, dags_dir=folder)
    run = trigger_run(e2e_store, dag_name="fixable", params={})
    config = load_config()

    def run_engine() -> DagRunState:
        return drive(e2e_store, config, repo_url=repository.url, dags_path="fix", run_id=run.id)

    assert run_engine() is DagRunState.FAILED
    if latest:
        (folder / "state.txt").write_text("fixed")
        fixed_commit = repository.commit("fix the script")
        sync.apply_revision(revision=fixed_commit, dags_dir=folder)
    else:
        flag.write_text("up")
    if latest:
        assert main(["retry", str(run.id), "--latest"]) == 0
    else:
        api = UiEndpoints(
            store=e2e_store,
            log_store=LogStore(config.log_store_location),
            api=kubernetes.client.ApiClient(),
            namespace=config.executor.namespaces[0],
            token=TOKEN,
            repo_url=repository.url,
            wake=lambda run_ids: None,
        )
        reply = api.handle(
            "POST", f"/api/v1/runs/{run.id}/retry", {"Authorization": f"Bearer {TOKEN}"}, b"{}"
        )
        assert reply is not None
        assert reply.status == 202
    assert run_engine() is DagRunState.SUCCEEDED
    with e2e_store.transaction() as uow:
        record = uow.get_run(run.id)
    assert record is not None
    assert record.revision == (fixed_commit if latest else first_commit)
    assert rows(e2e_store, run.id) == [
        ("check", 1, TaskState.FAILED),
        ("check", 2, TaskState.CLEARED),
        ("check", 3, TaskState.SUCCEEDED),
        ("report", 1, TaskState.UPSTREAM_FAILED),
        ("report", 2, TaskState.CLEARED),
        ("report", 3, TaskState.SUCCEEDED),
    ]


DAILY = Dag(
    name="daily",
    schedule="0 3 * * *",
    start_date=datetime(2026, 3, 1, tzinfo=UTC),
    max_active_runs=3,
    tasks=(task("load", overrides=scripted(duration="1")),),
)


def test_a_backfilled_week_runs_each_date_once_within_its_cap(
    controller_env: dict[str, str], e2e_store: Store, tmp_path: Path
) -> None:
    store_dag(e2e_store, DAILY)
    week = ["--from", "2026-03-02", "--to", "2026-03-08"]
    assert main(["backfill", "daily", *week, "--max-active-runs", "2"]) == 0
    fired = datetime(2026, 3, 5, 3, 0, 1, tzinfo=UTC)
    assert (
        Scheduler(e2e_store, on_runs_created=lambda ids: None, clock=lambda: fired).run_pass(
            "daily"
        )
        == []
    )
    log = tmp_path / "controller.log"
    assert start_controller(controller_env, log).wait(180) == 0, log.read_text()[-3000:]
    with e2e_store.transaction() as uow:
        runs = uow.list_runs(dag_name="daily", limit=100)
    assert sorted(run.logical_date.day for run in runs) == list(range(2, 9))
    assert {(run.run_type.value, run.state.value) for run in runs} == {("backfill", "succeeded")}
    spans = [(run.started_at, run.finished_at) for run in runs]
    busiest = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert busiest <= 2
