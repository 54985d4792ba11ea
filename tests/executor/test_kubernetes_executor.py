"""The Kubernetes executor against the real API server and store, with scripted pods."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from controller.base.states import FailureKind, TaskState
from controller.base.tries import TryKey
from controller.engine.seam import LaunchOrder, PodStop, UpdateSink
from controller.executor.cleanup import CleanupPolicy
from controller.executor.kubeclient import make_api_client
from controller.executor.kubernetes import ExecutorSettings, KubernetesExecutor
from controller.executor.podspec import RESULT_FINALIZER, PodConfig
from controller.logstore import LogKey, LogStore
from controller.runtime.engine import Engine
from controller.spec.model import Dag, Task
from controller.spec.podpolicy import PodPolicy
from controller.store import Store, upgrade
from tests.e2e.harness import StoreSink, launched_run, orders_for, rows_of, scripted, task, wait_for
from tests.runtime.support import queue_run, store_dag

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]


@pytest.fixture
def api(cluster: Any) -> Iterator[kubernetes.client.ApiClient]:
    with make_api_client(kubeconfig=str(cluster.kubeconfig)) as client:
        yield client


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'kubedag.db'}"
    upgrade(url)
    store = Store.connect(url)
    yield store
    store.close()


def settings(namespace: str, **changes: Any) -> ExecutorSettings:
    values: dict[str, Any] = {
        "pod": PodConfig(repo_url="file:///nonexistent", namespace=namespace),
        "instance": "test",
        "reconcile_interval": 60.0,
        "cleanup": CleanupPolicy(delete_on_success=True, delete_on_failure=False),
    }
    values.update(changes)
    return ExecutorSettings(**values)


def executor_for(
    api: kubernetes.client.ApiClient, store: Store, namespace: str, tmp_path: Path, **changes: Any
) -> KubernetesExecutor:
    return KubernetesExecutor(
        api,
        store,
        settings=settings(namespace, **changes),
        log_store=LogStore(str(tmp_path / "logs")),
    )


def pods(api: kubernetes.client.ApiClient, namespace: str) -> dict[str, Any]:
    listed = kubernetes.client.CoreV1Api(api).list_namespaced_pod(namespace, _request_timeout=10)
    return {str(getattr(pod.metadata, "name", "")): pod for pod in listed.items}


def finished(store: Store, run_id: int) -> bool:
    """Every task row of the run is finished, read at once: a run whose rows are not yet
    created is not finished."""
    rows = rows_of(store, run_id).values()
    return bool(rows) and all(row.state.finished for row in rows)


def test_results_failures_and_logs_reach_the_store(
    api: kubernetes.client.ApiClient, sqlite_store: Store, namespace: str, tmp_path: Path
) -> None:
    dag = Dag(
        name="mixed",
        tasks=(
            task("ok", overrides=scripted(**{"termination-message": "42", "log": "hello\n"})),
            task("boom", overrides=scripted(**{"exit-code": "3", "duration": "0.2"})),
            task("pull", overrides=scripted(failure="ErrImagePull")),
        ),
    )
    run_id, rows = launched_run(sqlite_store, dag, namespace=namespace)
    executor = executor_for(api, sqlite_store, namespace, tmp_path)
    executor.start(StoreSink(sqlite_store))
    try:
        executor.launch(orders_for(dag, rows))
        wait_for(lambda: finished(sqlite_store, run_id), what="every try to finish")
        wait_for(lambda: executor.results_stored(run_id), what="results and logs stored")
        done = rows_of(sqlite_store, run_id)
        assert (done["ok/0"].state, done["ok/0"].result) == (TaskState.SUCCEEDED, "42")
        assert done["boom/0"].state is TaskState.FAILED
        assert (done["boom/0"].failure_kind, done["boom/0"].exit_code) == (FailureKind.TASK, 3)
        assert done["pull/0"].failure_kind is FailureKind.INFRA
        assert done["pull/0"].reason == "ErrImagePull"
        with sqlite_store.transaction() as uow:
            assert uow.get_cursor(namespace)
        logs = LogStore(str(tmp_path / "logs"))
        key = LogKey(TryKey(run_id, "ok", 0, 1), "task")
        assert logs.read(key) == "hello\n"
        remaining = wait_for(
            lambda: (p := pods(api, namespace)) and len(p) == 1 and p,
            what="the succeeded pod to be deleted and the pull pod to go",
        )
        (kept,) = remaining.values()
        assert kept.metadata.name == done["boom/0"].pod_name
        assert RESULT_FINALIZER not in (kept.metadata.finalizers or [])
    finally:
        executor.stop()


def test_a_pod_the_api_refuses_fails_as_infrastructure_with_its_message(
    api: kubernetes.client.ApiClient, sqlite_store: Store, namespace: str, tmp_path: Path
) -> None:
    dag = Dag(name="refused", tasks=(task("bad", overrides={"nodeSelector": {"-bad-": "x"}}),))
    run_id, rows = launched_run(sqlite_store, dag, namespace=namespace)
    executor = executor_for(api, sqlite_store, namespace, tmp_path)
    executor.start(StoreSink(sqlite_store))
    try:
        executor.launch(orders_for(dag, rows))
        wait_for(lambda: finished(sqlite_store, run_id), what="the refused try to fail")
        row = rows_of(sqlite_store, run_id)["bad/0"]
        assert (row.failure_kind, row.reason) == (FailureKind.INFRA, "PodRejected")
        assert "nodeSelector" in (row.message or "")
    finally:
        executor.stop()


def test_a_result_the_kubelet_may_have_cut_fails_the_try(
    api: kubernetes.client.ApiClient, sqlite_store: Store, namespace: str, tmp_path: Path
) -> None:
    dag = Dag(
        name="results",
        tasks=(
            task("fits", overrides=scripted(**{"termination-message": "x" * 4095})),
            task("cut", overrides=scripted(**{"termination-message": "x" * 4096})),
        ),
    )
    run_id, rows = launched_run(sqlite_store, dag, namespace=namespace)
    executor = executor_for(api, sqlite_store, namespace, tmp_path)
    executor.start(StoreSink(sqlite_store))
    try:
        executor.launch(orders_for(dag, rows))
        wait_for(lambda: finished(sqlite_store, run_id), what="both tries to end")
        done = rows_of(sqlite_store, run_id)
        assert done["fits/0"].state is TaskState.SUCCEEDED
        assert done["fits/0"].result == "x" * 4095
        cut = done["cut/0"]
        assert (cut.state, cut.failure_kind, cut.reason) == (
            TaskState.FAILED,
            FailureKind.TASK,
            "ResultTooLarge",
        )
        assert cut.result is None
    finally:
        executor.stop()


def test_a_task_the_pod_policy_refuses_fails_at_launch_and_no_pod_is_created(
    api: kubernetes.client.ApiClient, sqlite_store: Store, namespace: str, tmp_path: Path
) -> None:
    """A DAG stored before the policy tightened is still refused, before its pod exists."""
    dag = Dag(
        name="policy",
        tasks=(
            task("as-controller", overrides={"serviceAccountName": "kubedag-controller"}),
            task(
                "reads-db",
                overrides=scripted(),
                env_from=({"secretRef": {"name": "kubedag-database"}},),
            ),
            task(
                "allowed",
                overrides=scripted(),
                env_from=({"secretRef": {"name": "warehouse", "optional": True}},),
            ),
        ),
    )
    run_id, rows = launched_run(sqlite_store, dag, namespace=namespace)
    policy = PodPolicy(allowed_secrets=frozenset({"warehouse"}))
    executor = executor_for(api, sqlite_store, namespace, tmp_path, pod_policy=policy)
    executor.start(StoreSink(sqlite_store))
    try:
        executor.launch(orders_for(dag, rows))
        wait_for(lambda: finished(sqlite_store, run_id), what="every try to end")
        done = rows_of(sqlite_store, run_id)
        assert done["allowed/0"].state is TaskState.SUCCEEDED
        for name, field in (
            ("as-controller/0", "podOverrides.serviceAccountName"),
            ("reads-db/0", "envFrom[0].secretRef.name"),
        ):
            assert (done[name].state, done[name].reason) == (TaskState.FAILED, "RefusedByPolicy")
            assert f"{field}: " in (done[name].message or ""), done[name].message
        created = {pod.metadata.name for pod in pods(api, namespace).values()}
        assert done["as-controller/0"].pod_name not in created
        assert done["reads-db/0"].pod_name not in created
    finally:
        executor.stop()


def test_a_restarted_executor_adopts_running_pods_and_relaunches_unlaunched_ones(
    api: kubernetes.client.ApiClient, sqlite_store: Store, namespace: str, tmp_path: Path
) -> None:
    running = Dag(
        name="running",
        tasks=(task("slow", overrides=scripted(duration="2", **{"termination-message": "s"})),),
    )
    unlaunched = Dag(
        name="unlaunched",
        tasks=(task("never", overrides=scripted(**{"termination-message": "n"})),),
    )
    first = executor_for(api, sqlite_store, namespace, tmp_path)
    first.start(StoreSink(sqlite_store))
    slow_run, rows = launched_run(sqlite_store, running, namespace=namespace)
    first.launch(orders_for(running, rows))
    wait_for(
        lambda: rows_of(sqlite_store, slow_run)["slow/0"].state is TaskState.RUNNING,
        what="the slow try to run",
    )
    # Written LAUNCHED, then the controller stopped before creating the pod.
    never_run, _ = launched_run(sqlite_store, unlaunched, namespace=namespace)
    first.stop()
    second = executor_for(api, sqlite_store, namespace, tmp_path)
    second.start(StoreSink(sqlite_store))
    try:
        wait_for(
            lambda: finished(sqlite_store, slow_run) and finished(sqlite_store, never_run),
            what="both tries to finish",
        )
        slow = rows_of(sqlite_store, slow_run)["slow/0"]
        never = rows_of(sqlite_store, never_run)["never/0"]
        assert (slow.state, slow.result) == (TaskState.SUCCEEDED, "s")
        assert (never.state, never.result) == (TaskState.SUCCEEDED, "n")
        assert second.watchers[0].reconciler.relaunched == 1
    finally:
        second.stop()


def test_a_running_try_whose_pod_vanished_fails_as_lost(
    api: kubernetes.client.ApiClient, sqlite_store: Store, namespace: str, tmp_path: Path
) -> None:
    dag = Dag(name="vanish", tasks=(task("gone", overrides=scripted(duration="30")),))
    run_id, rows = launched_run(sqlite_store, dag, namespace=namespace)
    first = executor_for(api, sqlite_store, namespace, tmp_path)
    first.start(StoreSink(sqlite_store))
    first.launch(orders_for(dag, rows))
    wait_for(
        lambda: rows_of(sqlite_store, run_id)["gone/0"].state is TaskState.RUNNING,
        what="the try to run",
    )
    first.stop()
    core = kubernetes.client.CoreV1Api(api)
    name = str(rows[0].pod_name)
    core.patch_namespaced_pod(
        name, namespace, {"metadata": {"finalizers": None}}, _request_timeout=10
    )
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _request_timeout=10)
    wait_for(lambda: name not in pods(api, namespace), what="the pod to vanish")
    second = executor_for(api, sqlite_store, namespace, tmp_path)
    second.start(StoreSink(sqlite_store))
    try:
        # The startup reconcile runs on the watcher's thread: start() does not wait for it.
        wait_for(lambda: finished(sqlite_store, run_id), what="the startup reconcile")
        row = rows_of(sqlite_store, run_id)["gone/0"]
        assert (row.state, row.failure_kind, row.reason) == (
            TaskState.FAILED,
            FailureKind.TASK,
            "PodLost",
        )
    finally:
        second.stop()


def test_a_task_without_checkout_runs_without_the_repository_and_without_a_token(
    api: kubernetes.client.ApiClient, sqlite_store: Store, namespace: str, tmp_path: Path
) -> None:
    # The repository URL leads nowhere: a checkout would fail the try as INFRA.
    write_result = 'printf done > "$KUBEDAG_RESULT_PATH"'
    notify = Task(
        name="notify", image="busybox:1.36", command=("sh", "-c", write_result), checkout=False
    )
    dag = Dag(name="no-checkout", tasks=(notify,))
    run_id, rows = launched_run(sqlite_store, dag, namespace=namespace)
    # The pod is kept after success: a pod this quick could otherwise come and go between
    # two listings, and the test would never see it.
    keep = CleanupPolicy(delete_on_success=False, delete_on_failure=False)
    executor = executor_for(api, sqlite_store, namespace, tmp_path, cleanup=keep)
    executor.start(StoreSink(sqlite_store))
    try:
        executor.launch(orders_for(dag, rows))
        pod = wait_for(
            lambda: pods(api, namespace).get(str(rows[0].pod_name)), what="the pod to exist"
        )
        assert not pod.spec.init_containers
        assert not pod.spec.volumes  # no workspace, and no projected API token either
        wait_for(lambda: finished(sqlite_store, run_id), what="the try to finish")
        done = rows_of(sqlite_store, run_id)["notify/0"]
        assert (done.state, done.result) == (TaskState.SUCCEEDED, "done")
    finally:
        executor.stop()


def test_a_pod_stuck_before_its_task_starts_fails_its_try_and_goes(
    api: kubernetes.client.ApiClient, sqlite_store: Store, namespace: str, tmp_path: Path
) -> None:
    dag = Dag(name="stuck", tasks=(task("hung", overrides=scripted(**{"init-duration": "120"})),))
    run_id, rows = launched_run(sqlite_store, dag, namespace=namespace)
    executor = executor_for(
        api, sqlite_store, namespace, tmp_path, pending_timeout=10.0, reconcile_interval=1.0
    )
    executor.start(StoreSink(sqlite_store))
    try:
        executor.launch(orders_for(dag, rows))
        wait_for(lambda: finished(sqlite_store, run_id), what="the stuck try to fail")
        row = rows_of(sqlite_store, run_id)["hung/0"]
        assert (row.state, row.failure_kind, row.reason) == (
            TaskState.FAILED,
            FailureKind.INFRA,
            "PendingTimeout",
        )
        assert "the git-checkout init container is still running" in (row.message or "")
        wait_for(lambda: not pods(api, namespace), what="the stuck pod to be deleted")
    finally:
        executor.stop()


class FailsFirstLaunch:
    """The executor, but its first hand-over of new tries raises: the engine's loop fails
    after it claimed the tries and before any pod was asked for."""

    relaunches_itself = True

    def __init__(self, executor: KubernetesExecutor) -> None:
        self.executor = executor
        self.failed = False

    def start(self, sink: UpdateSink) -> None:
        self.executor.start(sink)

    def launch(self, orders: Sequence[LaunchOrder]) -> None:
        if not self.failed and any(not order.relaunch for order in orders):
            self.failed = True
            raise RuntimeError("the hand-over failed")
        self.executor.launch(orders)

    def cancel(self, stops: Sequence[PodStop]) -> None:
        self.executor.cancel(stops)

    def stop(self) -> None:
        self.executor.stop()


def test_a_try_claimed_before_an_engine_error_gets_its_pod_without_waiting_for_the_interval(
    api: kubernetes.client.ApiClient, sqlite_store: Store, namespace: str, tmp_path: Path
) -> None:
    dag = Dag(name="claimed", tasks=(task("once", overrides=scripted()),))
    executor = FailsFirstLaunch(
        executor_for(api, sqlite_store, namespace, tmp_path, reconcile_interval=3600.0)
    )
    engine = Engine(sqlite_store, executor)
    engine.start()
    try:
        store_dag(sqlite_store, dag)
        run_id = queue_run(sqlite_store, dag).id
        engine.wake([run_id])
        wait_for(
            lambda: finished(sqlite_store, run_id),
            what="the claimed try's pod to be created and the try to finish",
        )
        assert executor.failed
        (row,) = rows_of(sqlite_store, run_id).values()
        assert (row.state, row.try_number) == (TaskState.SUCCEEDED, 1)
    finally:
        engine.stop()
