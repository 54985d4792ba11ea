"""Every sample DAG runs on the local control plane through `kubedag run`, in process mode."""

from __future__ import annotations

import threading
from pathlib import Path

import kubernetes.client
import pytest

from controller.base.states import TaskState
from controller.cli import main
from controller.store import Store
from tests.e2e.repo import SAMPLES, Repository
from tests.fixtures.gate import Gate, pinned_dag

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent", "controller_env")]


def expected(sample: Path) -> str:
    first = sample.read_text().splitlines()[0]
    assert first.startswith("# expected: "), f"{sample.name} does not say what to expect"
    return first.removeprefix("# expected: ").strip()


def latest_run(store: Store) -> int:
    with store.transaction() as uow:
        runs = uow.list_runs(limit=10)
    return max(run.id for run in runs)


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sample_dag_ends_as_expected(
    sample: Path, repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--wait", str(repository.clone / "sample-dags" / sample.name)])
    out = capsys.readouterr().out
    assert code == (0 if expected(sample) == "succeeded" else 1), out
    assert out.rstrip().endswith(expected(sample))


def test_results_flow_downstream_and_logs_outlive_the_pods(
    repository: Repository,
    e2e_store: Store,
    kube: kubernetes.client.ApiClient,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--wait", str(repository.clone / "sample-dags" / "etl-orders.yaml")]) == 0
    run_id = latest_run(e2e_store)
    with e2e_store.transaction() as uow:
        rows = {(r.task_name, r.item_index): r for r in uow.list_task_instances(run_id)}
    assert all(row.state is TaskState.SUCCEEDED for row in rows.values())
    transformed = [rows[("transform", i)].result for i in (0, 1)]
    assert all(result and '"rows"' in result for result in transformed)
    assert (rows[("load", 0)].result or "").startswith("loaded ")
    listed = kubernetes.client.CoreV1Api(kube).list_namespaced_pod(namespace, _request_timeout=10)
    assert listed.items == []
    capsys.readouterr()
    assert main(["logs", str(run_id), "load"]) == 0
    assert "result: loaded" in capsys.readouterr().out
    assert main(["logs", str(run_id), "transform", "--item", "1"]) == 0
    assert capsys.readouterr().out


def test_a_push_during_a_run_does_not_change_the_run(
    repository: Repository, e2e_store: Store, gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    dags = repository.clone / "pinned"
    dags.mkdir()
    (dags / "pinned-version.txt").write_text("v1")
    (dags / "pinned.yaml").write_text(pinned_dag(gate))
    repository.commit("v1")
    outcome: list[int] = []
    runner = threading.Thread(
        target=lambda: outcome.append(main(["run", "--wait", str(dags / "pinned.yaml")]))
    )
    runner.start()
    # The run's first task holds at the gate while v2 lands, so `read` starts after it.
    gate.wait_reached(timeout=60, what="the pinned run's first task")
    (dags / "pinned-version.txt").write_text("v2")
    repository.commit("v2")
    gate.open()
    runner.join(60)
    assert not runner.is_alive(), "`kubedag run --wait` did not return within 60s"
    assert outcome == [0], capsys.readouterr().out
    with e2e_store.transaction() as uow:
        rows = {r.task_name: r for r in uow.list_task_instances(latest_run(e2e_store))}
    assert rows["read"].result == "v1"
