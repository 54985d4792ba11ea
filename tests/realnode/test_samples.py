"""Every sample DAG, run by the deployed controller in real containers, ends as documented.

The worker pods' init container fetches the run's commit over HTTP with the token from
the Secret (the `alpine/git` stand-in), the task runs in the `python:3.12-slim`
stand-in as the non-root user with a read-only view of nothing but its workspace, and
the result travels through the real termination message file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from controller.base.states import DagRunState, TaskState
from controller.devcluster.realnode import HOST_LOG_STORE
from controller.runtime.manual import trigger_run
from tests.deploy.test_rbac import expected_states
from tests.realnode.conftest import Deployment
from tests.realnode.runs import finished, synced, task_rows, wait_for

# Setup may bring the node up and deploy kubedag; a cold machine builds images first.
pytestmark = [pytest.mark.realnode, pytest.mark.timeout(1200)]


@dataclass
class SampleRuns:
    run_ids: dict[str, int]
    states: dict[str, DagRunState]


@pytest.fixture(scope="module")
def sample_runs(deployment: Deployment) -> SampleRuns:
    expected = expected_states()
    synced(deployment, set(expected))
    run_ids = {
        name: trigger_run(deployment.store, dag_name=name, params={}).id for name in expected
    }
    return SampleRuns(run_ids, finished(deployment, run_ids, timeout=420))


def test_every_sample_dag_reaches_its_documented_end_state(sample_runs: SampleRuns) -> None:
    assert sample_runs.states == expected_states()


def test_results_pass_downstream_through_the_termination_message(
    deployment: Deployment, sample_runs: SampleRuns
) -> None:
    rows = {
        (r.task_name, r.item_index): r
        for r in task_rows(deployment.store, sample_runs.run_ids["etl-orders"])
    }
    assert {r.state for r in rows.values()} == {TaskState.SUCCEEDED}
    assert all('"rows"' in (rows[("transform", i)].result or "") for i in (0, 1))
    assert (rows[("load", 0)].result or "").startswith("loaded ")
    assert {r.node for r in rows.values()} == {"kubedag-real-0"}


def test_a_failure_runs_the_failure_branch_and_the_cleanup(
    deployment: Deployment, sample_runs: SampleRuns
) -> None:
    rows = {
        r.task_name: r for r in task_rows(deployment.store, sample_runs.run_ids["partner-import"])
    }
    assert rows["validate-files"].state is TaskState.FAILED
    assert rows["validate-files"].exit_code == 1
    assert rows["publish"].state is TaskState.UPSTREAM_FAILED
    assert rows["notify-failure"].state is TaskState.SUCCEEDED
    assert rows["notify-failure"].result == "alert sent: import of partner-import failed"
    assert rows["cleanup"].state is TaskState.SUCCEEDED


def test_logs_are_read_from_the_log_store_after_the_pods_are_gone(
    deployment: Deployment, sample_runs: SampleRuns
) -> None:
    run_id = sample_runs.run_ids["etl-orders"]
    # A try is finished in the store first; its pod is cleaned (log copied, pod deleted)
    # just after.
    wait_for(
        deployment,
        lambda: (
            not deployment.core.list_namespaced_pod(
                deployment.workers,
                label_selector=f"kubedag.io/run-id={run_id}",
                _request_timeout=10,
            ).items
        ),
        timeout=60,
        what="the run's pods to be cleaned",
    )
    shown = subprocess.run(
        [sys.executable, "-m", "controller", "logs", str(run_id), "load"],
        env={
            **os.environ,
            "KUBEDAG_DATABASE_URL": deployment.store_url,
            "KUBEDAG_LOG_STORE": str(HOST_LOG_STORE),
            "KUBECONFIG": str(deployment.cluster.kubeconfig),
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "result: loaded" in shown.stdout
