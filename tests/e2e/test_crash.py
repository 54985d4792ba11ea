"""SIGKILL the controller while pods launch and run, restart it: nothing lost, nothing twice."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import kubernetes.client
import pytest

from controller.base.states import DagRunState, TaskState
from controller.devcluster import LocalCluster
from controller.executor.kubeclient import make_api_client
from controller.executor.watchstream import list_pods
from controller.spec.model import Dag
from controller.store import Store
from tests.e2e.crashing import SELECTOR, start_controller
from tests.e2e.harness import queued_run, scripted, task, wait_for
from tests.e2e.podaudit import PodAudit
from tests.fixtures.cluster import without_watch_cache

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

ITEMS = 40


def queue_run(store: Store) -> int:
    dag = Dag(
        name="crash",
        max_active_tasks=ITEMS,
        tasks=(
            task("root", overrides=scripted(duration="0.5", **{"termination-message": "r"})),
            task(
                "fan",
                depends_on=("root",),
                with_items=tuple(range(ITEMS)),
                overrides=scripted(duration="3", **{"termination-message": "ok"}),
            ),
            task("last", depends_on=("fan",), overrides=scripted(**{"termination-message": "l"})),
        ),
    )
    return queued_run(store, dag)


def finished_unrecorded(
    api: kubernetes.client.ApiClient, store: Store, *, namespace: str, run_id: int
) -> bool:
    """Whether a pod of the run succeeded that the store does not know of yet."""
    pods, _ = list_pods(api, namespace=namespace, label_selector=SELECTOR)
    succeeded = {p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Succeeded"}
    with store.transaction() as uow:
        rows = uow.list_task_instances(run_id)
    return bool(succeeded - {row.pod_name for row in rows if row.state is TaskState.SUCCEEDED})


def unfinished_pods(api: kubernetes.client.ApiClient, namespace: str) -> int:
    pods, _ = list_pods(api, namespace=namespace, label_selector=SELECTOR)
    return sum(p["status"].get("phase") in ("Pending", "Running") for p in pods)


def watch_cursor(store: Store, namespace: str) -> int:
    with store.transaction() as uow:
        cursor = uow.get_cursor(namespace)
    assert cursor is not None, "the controller committed no watch position"
    return int(cursor)


@pytest.fixture(params=[False, True], ids=["resume", "after-compaction"])
def compact(request: pytest.FixtureRequest, local_cluster: LocalCluster) -> Iterator[bool]:
    """Whether etcd is compacted while the controller is down.

    If so, the apiserver runs without its watch cache, so the restarted watch is answered
    410 however the shared cluster was started (the cache would answer from its window).
    """
    if not request.param:
        yield False
        return
    with without_watch_cache(local_cluster):
        yield True


def test_a_killed_controller_restarts_without_losing_or_repeating_a_task(
    compact: bool,
    controller_env: dict[str, str],
    e2e_store: Store,
    local_cluster: LocalCluster,
    namespace: str,
    tmp_path: Path,
) -> None:
    run_id = queue_run(e2e_store)
    log = tmp_path / "controller.log"
    with make_api_client(kubeconfig=str(local_cluster.kubeconfig)) as api:
        audit = PodAudit(api, namespace, label_selector=SELECTOR)
        try:
            first = start_controller(controller_env, log)
            # Kill it while the fan-out is half launched and running. Counted in the
            # cluster, not the store: a try is `launched` from its claim, before its pod is
            # posted, and a kill between the two left no pod to finish while it was down.
            wait_for(
                lambda: unfinished_pods(api, namespace) >= ITEMS // 2,
                timeout=60,
                what="half the fan-out's pods to exist, unfinished",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            if compact:
                cursor = watch_cursor(e2e_store, namespace)
                # History the restart must not lose: a pod finished after the cursor.
                wait_for(
                    lambda: finished_unrecorded(api, e2e_store, namespace=namespace, run_id=run_id),
                    timeout=30,
                    what="a pod to finish while the controller is down",
                )
                # A watch from the cursor starts at cursor + 1, which must be compacted away,
                # so etcd must be compacted at cursor + 2 or later. The pod's finish is one
                # write past the cursor; the node may have made no other while the
                # controller was down, so the test makes one of its own.
                kubernetes.client.CoreV1Api(api).create_namespaced_config_map(
                    namespace, {"metadata": {"name": "past-the-cursor"}}, _request_timeout=10
                )
                assert local_cluster.compact_etcd() > cursor + 1
            second = start_controller(controller_env, log)
            assert second.wait(150) == 0, log.read_text()[-3000:]
            with e2e_store.transaction() as uow:
                run = uow.get_run(run_id)
                rows = uow.list_task_instances(run_id)
            audit.wait_seen(row.pod_name for row in rows if row.pod_name)
        finally:
            audit.stop()
    assert run is not None
    assert run.state is DagRunState.SUCCEEDED
    assert len(rows) == ITEMS + 2
    assert all(row.try_number == 1 and row.state is TaskState.SUCCEEDED for row in rows)
    assert all(row.result for row in rows)
    created_twice = {name: uids for name, uids in audit.uids.items() if len(uids) > 1}
    assert created_twice == {}
    assert len(audit.uids) == ITEMS + 2
    if compact:
        # The restarted watch was answered 410 Gone and the namespace listed again.
        expired = re.search(r"^done expired=(\d+)$", log.read_text(), re.MULTILINE)
        assert expired is not None, log.read_text()[-3000:]
        assert int(expired.group(1)) >= 1
