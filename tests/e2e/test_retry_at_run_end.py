"""A run whose failure is certain while another task's infrastructure retry still waits.

On the local cluster, through the engine and the Kubernetes executor: `doomed` fails for
good (its container exits 1, no retries), and `pulled` cannot start because the Secret
its environment reads does not exist yet (CreateContainerConfigError, an infrastructure
failure), so its try 2 waits for its retry time. The engine's clock is held while that
is so, which makes the wait last as long as the test needs to look at it, whatever the
order the two failures arrive in. The run does not end there: the Secret is created,
the clock let go, try 2 runs and succeeds, and only then does the run end, failed,
with every instance finished and the events saying why it waited and why it failed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.executor.cleanup import CleanupPolicy
from controller.executor.kubeclient import make_api_client
from controller.executor.kubernetes import ExecutorSettings, KubernetesExecutor
from controller.executor.podspec import PodConfig
from controller.logstore import LogStore
from controller.runtime.engine import Engine
from controller.runtime.plans import RUN_FAILING
from controller.spec.model import Dag, RetryPolicy
from controller.store import EventRecord, Store
from tests.e2e.harness import queued_run, scripted, task, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

SECRET = "late-credentials"


class HeldClock:
    """The engine's clock, standing still until `release`: no retry time comes meanwhile."""

    def __init__(self) -> None:
        self._held: datetime | None = datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._held or datetime.now(UTC)

    def release(self) -> None:
        with self._lock:
            self._held = None


def mixed_dag() -> Dag:
    late_env = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "token"}}}
    return Dag(
        name="mixed",
        tasks=(
            task(
                "doomed",
                checkout=False,
                retries=RetryPolicy(limit=0),
                overrides=scripted(**{"exit-code": "1"}),
            ),
            task(
                "pulled",
                checkout=False,
                retries=RetryPolicy(limit=0),
                env=(late_env,),
                command=("sh", "-c", 'test "$TOKEN" = ready'),
            ),
        ),
    )


@pytest.fixture
def engine_parts(
    cluster: Any, namespace: str, e2e_store: Store, tmp_path: Path
) -> Iterator[tuple[Engine, HeldClock]]:
    clock = HeldClock()
    with make_api_client(kubeconfig=str(cluster.kubeconfig)) as api:
        settings = ExecutorSettings(
            pod=PodConfig(repo_url="file:///nonexistent", namespace=namespace),
            instance="retry-at-end",
            cleanup=CleanupPolicy(delete_on_success=True, delete_on_failure=True),
        )
        executor = KubernetesExecutor(
            api, e2e_store, settings=settings, log_store=LogStore(str(tmp_path / "logs"))
        )
        engine = Engine(e2e_store, executor, clock=clock)
        engine.start()
        try:
            yield engine, clock
        finally:
            engine.stop()


def events(store: Store, run_id: int) -> list[EventRecord]:
    with store.transaction() as uow:
        return uow.list_events(run_id=run_id, limit=1000)


def run_record_state(store: Store, run_id: int) -> DagRunState:
    with store.transaction() as uow:
        run = uow.get_run(run_id)
    assert run is not None
    return run.state


def waiting_retry(store: Store, run_id: int) -> bool:
    """`doomed` failed for good (the run-failing event) and `pulled` try 2 waits."""
    told = any(event.kind == RUN_FAILING for event in events(store, run_id))
    retry = [r for r in rows_of_task(store, run_id, "pulled") if r.try_number == 2]
    return told and bool(retry) and retry[0].state is TaskState.PENDING


def rows_of_task(store: Store, run_id: int, name: str) -> list[Any]:
    with store.transaction() as uow:
        rows = uow.list_task_instances(run_id)
    return sorted((r for r in rows if r.task_name == name), key=lambda r: r.try_number)


def test_a_failing_run_waits_for_a_pending_infra_retry_and_ends_once_it_ran(
    engine_parts: tuple[Engine, HeldClock], e2e_store: Store, kube: Any, namespace: str
) -> None:
    engine, clock = engine_parts
    run_id = queued_run(e2e_store, mixed_dag())
    engine.wake([run_id])
    wait_for(
        lambda: waiting_retry(e2e_store, run_id),
        timeout=60,
        what="doomed to fail and pulled's try 2 to wait for its retry time",
    )
    # Both failures are planned (the run-failing event is written with the decisions of
    # the plan that saw doomed's), and the run goes on: its failure is certain, but it
    # ends only once every instance is finished for good.
    assert run_record_state(e2e_store, run_id) is DagRunState.RUNNING
    doomed = rows_of_task(e2e_store, run_id, "doomed")
    assert [(r.try_number, r.state, r.failure_kind) for r in doomed] == [
        (1, TaskState.FAILED, FailureKind.TASK)
    ]
    first, retry = rows_of_task(e2e_store, run_id, "pulled")
    assert (first.state, first.failure_kind, first.reason) == (
        TaskState.FAILED,
        FailureKind.INFRA,
        "CreateContainerConfigError",
    )
    assert retry.not_before is not None
    assert first.finished_at is not None
    assert retry.not_before > first.finished_at
    failing = [event for event in events(e2e_store, run_id) if event.kind == RUN_FAILING]
    assert len(failing) == 1
    assert "will end failed (doomed[0] try 1 failed) once these finish: " in failing[0].message
    assert "pulled[0] try" in failing[0].message

    # The infrastructure is fixed while the retry waits; its time comes.
    kubernetes.client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        {"metadata": {"name": SECRET}, "stringData": {"token": "ready"}},
        _request_timeout=10,
    )
    clock.release()
    engine.wake()
    wait_for(
        lambda: run_record_state(e2e_store, run_id).finished,
        timeout=60,
        what="the run to end",
    )

    assert run_record_state(e2e_store, run_id) is DagRunState.FAILED
    pulled = rows_of_task(e2e_store, run_id, "pulled")
    assert [(r.try_number, r.state) for r in pulled] == [
        (1, TaskState.FAILED),
        (2, TaskState.SUCCEEDED),
    ]
    with e2e_store.transaction() as uow:
        run = uow.get_run(run_id)
    assert run is not None
    assert run.finished_at is not None
    assert pulled[1].finished_at is not None
    assert run.finished_at >= pulled[1].finished_at
    told = {event.kind: event for event in events(e2e_store, run_id)}
    assert "pulled[0] retries as try 2" in told["task-retry"].message
    # doomed decided nothing else (no downstream): its news is written all the same.
    assert told["task-retries-exhausted"].task_name == "doomed"
    assert told["run-failed"].message.endswith("failed: doomed[0] try 1 failed")
    assert [event.kind for event in events(e2e_store, run_id)].count(RUN_FAILING) == 1
