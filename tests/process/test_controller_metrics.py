"""/metrics of a controller that runs DAGs on the real control plane: launches and API errors.

Each test starts its own controller, so its counters start at zero and every launch
counted is one the test caused. Pods are scripted (the node agent plays them without
processes), which keeps a run to a few seconds on a loaded machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.base.states import DagRunState, FailureKind, RunType
from controller.devcluster import LocalCluster
from controller.process.controller import Controller
from controller.store import DagRecord, TaskInstanceRecord
from tests.fixtures.cluster import ExternalCluster
from tests.gitsync.conftest import Remote, make_remote
from tests.process.controllers import controller_config, scrape, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

SCRIPTED = """\
    podOverrides:
      annotations: {agent.kubedag.io/mode: scripted, agent.kubedag.io/duration: "0.2"}
"""

FAN_OUT = f"""\
apiVersion: kubedag.io/v1
kind: DAG
metadata:
  name: fan-out
spec:
  defaults:
    image: python:3.12-slim
{SCRIPTED}\
  tasks:
    - {{name: first, command: [sh, -c, "true"]}}
    - {{name: each, dependsOn: [first], withItems: [a, b, c], command: [sh, -c, "true"]}}
"""

# Valid to kubedag's validator, refused by the API server's: affinity is passed through
# as written, and a node selector operator Kubernetes does not know is answered with 422.
REFUSED = f"""\
apiVersion: kubedag.io/v1
kind: DAG
metadata:
  name: refused
spec:
  defaults:
    image: python:3.12-slim
{SCRIPTED}\
  tasks:
    - name: only
      command: [sh, -c, "true"]
      podOverrides:
        affinity:
          nodeAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms:
                - matchExpressions: [{{key: disk, operator: Near, values: [ssd]}}]
"""

OUTCOMES = ("created", "already_exists", "rejected", "gave_up")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    remote = make_remote(tmp_path)
    remote.commit({"dags/fan-out.yaml": FAN_OUT, "dags/refused.yaml": REFUSED})
    return remote


@pytest.fixture
def controller(
    tmp_path: Path, remote: Remote, cluster: LocalCluster | ExternalCluster, namespace: str
) -> Iterator[Controller]:
    config = controller_config(
        remote=remote,
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'kubedag.db'}",
        kubeconfig=cluster.kubeconfig,
        namespace=namespace,
        # One retry shows that every try is counted; each more would only wait its
        # backoff (the third alone is 20 s).
        max_infra_retries=1,
    )
    controller = Controller(config, migrate=True)
    controller.start()
    try:
        assert controller.leadership.wait_started(30)
        yield controller
    finally:
        controller.stop()


def run_to_the_end(controller: Controller, dag_name: str) -> list[TaskInstanceRecord]:
    """Trigger a run of `dag_name`; once it is over, its tries."""
    dag = wait_for(lambda: valid_dag(controller, dag_name), timeout=30, what=dag_name)
    with controller.store.transaction() as uow:
        run, _ = uow.create_run(
            dag_name=dag_name,
            logical_date=datetime.now(UTC),
            run_type=RunType.MANUAL,
            revision=str(dag.spec_revision),
            spec=dict(dag.spec or {}),
        )
    controller.leadership.wake([run.id])
    wait_for(lambda: finished(controller, run.id), timeout=60, what=f"the {dag_name} run")
    with controller.store.transaction() as uow:
        return uow.list_task_instances(run.id)


def valid_dag(controller: Controller, name: str) -> DagRecord | None:
    with controller.store.transaction() as uow:
        record = uow.get_dag(name)
    return record if record is not None and record.valid and record.spec is not None else None


def finished(controller: Controller, run_id: int) -> DagRunState | None:
    with controller.store.transaction() as uow:
        run = uow.get_run(run_id)
    return run.state if run is not None and run.state.finished else None


def launched(samples: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> dict[str, float]:
    return {
        outcome: samples["kubedag_pods_launched_total"][(("outcome", outcome),)]
        for outcome in OUTCOMES
    }


def test_every_pod_of_a_run_is_counted_as_created_with_its_launch_latency(
    controller: Controller,
) -> None:
    tries = run_to_the_end(controller, "fan-out")

    samples = scrape(controller.http.port)

    assert len(tries) == 4
    assert launched(samples) == {"created": 4, "already_exists": 0, "rejected": 0, "gave_up": 0}
    assert samples["kubedag_launch_latency_seconds_count"][()] == 4
    assert 0 < samples["kubedag_launch_latency_seconds_sum"][()] < 4 * 30
    # Exported from the start (a rate() needs the zero), whether or not the watch had
    # trouble during the run.
    assert () in samples["kubedag_watch_restarts_total"]
    assert () in samples["kubedag_watch_gone_total"]


def test_a_pod_the_api_refuses_is_counted_by_its_status_code(controller: Controller) -> None:
    tries = run_to_the_end(controller, "refused")

    samples = scrape(controller.http.port)

    # The first try and the one infrastructure retry the controller allows.
    assert len(tries) == 2
    assert {(t.failure_kind, t.reason) for t in tries} == {(FailureKind.INFRA, "PodRejected")}
    counts = launched(samples)
    assert counts == {"created": 0, "already_exists": 0, "rejected": len(tries), "gave_up": 0}
    # One create per try, refused at once: one 422 each, and no latency (no pod exists).
    assert samples["kubedag_kubernetes_api_errors_total"][(("code", "422"),)] == len(tries)
    assert samples["kubedag_launch_latency_seconds_count"][()] == 0
