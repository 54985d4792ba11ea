"""A run stays on its commit when a push lands mid-run, a controller pod deleted mid-run
is replaced by one that adopts the running pods (no task runs twice), and a task that
fails once is retried in a fresh pod."""

from __future__ import annotations

import pytest

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.runtime.manual import trigger_run
from tests.fixtures.gate import Gate, dag_text, pinned_dag
from tests.realnode.conftest import Deployment
from tests.realnode.deployment import run_kubectl
from tests.realnode.runs import finished, synced, task_rows, wait_for

# Setup may bring the node up and deploy kubedag; a cold machine builds images first.
pytestmark = [pytest.mark.realnode, pytest.mark.timeout(1200)]


def chain_dag(gate: Gate) -> str:
    """`first` holds at `gate`, then returns a result that `second` prints."""
    result = "import os; open(os.environ['KUBEDAG_RESULT_PATH'], 'w').write('first done')"
    tasks = [
        {"name": "first", "command": gate.command(then=result)},
        {
            "name": "second",
            "dependsOn": ["first"],
            "command": ["python3", "-c", "print('second sees', '{{ tasks.first.result }}')"],
        },
    ]
    return dag_text("slow-chain", tasks)


def dag_revision(deployment: Deployment, name: str) -> str | None:
    with deployment.store.transaction() as uow:
        dag = next((d for d in uow.list_dags() if d.name == name), None)
    return dag.revision if dag else None


def test_a_push_during_a_run_does_not_change_the_run(deployment: Deployment, gate: Gate) -> None:
    folder = deployment.repository.clone / "sample-dags"
    (folder / "pinned-version.txt").write_text("v1")
    (folder / "pinned.yaml").write_text(pinned_dag(gate))
    deployment.repository.commit("pinned v1")
    synced(deployment, {"pinned"})
    run_id = trigger_run(deployment.store, dag_name="pinned", params={}).id
    # The first task holds at the gate until the push is synced, so `read` starts after it.
    gate.wait_reached(
        timeout=90, what="the pinned run's first task", detail=deployment.controller.diagnosis
    )
    (folder / "pinned-version.txt").write_text("v2")
    # The DAG file changes too, so the controller records that it read it at v2.
    (folder / "pinned.yaml").write_text(pinned_dag(gate) + "# v2\n")
    v2 = deployment.repository.commit("pinned v2")
    wait_for(
        deployment,
        lambda: dag_revision(deployment, "pinned") == v2,
        timeout=60,
        what="the controller to sync the push",
    )
    assert not any(r.task_name == "read" for r in task_rows(deployment.store, run_id))
    gate.open()
    assert finished(deployment, {"pinned": run_id}, timeout=120) == {
        "pinned": DagRunState.SUCCEEDED
    }
    rows = {r.task_name: r for r in task_rows(deployment.store, run_id)}
    assert rows["read"].result == "v1"


def test_a_deleted_controller_pod_is_replaced_and_no_task_runs_twice(
    deployment: Deployment, gate: Gate
) -> None:
    (deployment.repository.clone / "sample-dags" / "slow-chain.yaml").write_text(chain_dag(gate))
    deployment.repository.commit("a slow chain")
    synced(deployment, {"slow-chain"})
    run_id = trigger_run(deployment.store, dag_name="slow-chain", params={}).id
    # The first task holds at the gate until a replacement controller is Ready, so its pod
    # is running through the handover and the replacement must adopt it.
    gate.wait_reached(timeout=90, what="the first task", detail=deployment.controller.diagnosis)
    old = deployment.controller.ready_pod()
    assert old is not None
    run_kubectl(deployment.cluster.kubeconfig, "-n", "kubedag", "delete", "pod", old, "--wait=true")
    replacement = wait_for(
        deployment,
        lambda: (name := deployment.controller.ready_pod()) and name != old and name,
        timeout=120,
        what="a replacement controller pod to be Ready",
    )
    assert replacement != old
    gate.open()
    assert finished(deployment, {"slow-chain": run_id}, timeout=120) == {
        "slow-chain": DagRunState.SUCCEEDED
    }
    rows = task_rows(deployment.store, run_id)
    assert sorted((r.task_name, r.try_number) for r in rows) == [("first", 1), ("second", 1)]
    second = next(r for r in rows if r.task_name == "second")
    assert second.state is TaskState.SUCCEEDED


RETRY_DAG = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata: {name: flaky}
spec:
  defaults: {image: python:3.12-slim}
  tasks:
    - name: flaky
      retries: {limit: 1, backoff: {delay: 1s}}
      command:
        - python3
        - -c
        - >-
          import os, sys;
          sys.exit(3) if os.environ['KUBEDAG_TRY'] == '1' else print('second try')
"""


def test_a_task_that_fails_once_is_retried_in_a_new_pod(deployment: Deployment) -> None:
    (deployment.repository.clone / "sample-dags" / "flaky.yaml").write_text(RETRY_DAG)
    deployment.repository.commit("a flaky task")
    synced(deployment, {"flaky"})
    run_id = trigger_run(deployment.store, dag_name="flaky", params={}).id
    assert finished(deployment, {"flaky": run_id}, timeout=120) == {"flaky": DagRunState.SUCCEEDED}
    first, second = sorted(task_rows(deployment.store, run_id), key=lambda r: r.try_number)
    assert (first.try_number, first.state, first.exit_code) == (1, TaskState.FAILED, 3)
    assert first.failure_kind is FailureKind.TASK
    assert (second.try_number, second.state) == (2, TaskState.SUCCEEDED)
    assert first.pod_name != second.pod_name
