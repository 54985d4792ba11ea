"""Dynamic fan-out on the local cluster, with a SIGKILL between the expansion and its launch.

`list` returns a JSON array; `each` fans out over it. With maxActiveTasks 1 and `hold`
(created just before the items, so first in line) running, the expanded items are in
the store as PENDING rows and cannot launch: the controller is killed exactly there.
The restarted controller must launch each item once, from the stored expansion.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from controller.base import naming
from controller.base.states import DagRunState, TaskState
from controller.devcluster import LocalCluster
from controller.executor.kubeclient import make_api_client
from controller.executor.watchstream import list_pods
from controller.spec.model import Dag, ResultFormat
from controller.store import Store, TaskInstanceRecord
from tests.e2e.crashing import SELECTOR, start_controller
from tests.e2e.harness import queued_run, scripted, task, wait_for
from tests.e2e.podaudit import PodAudit

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

ITEMS = ["orders", "refunds", "returns"]
HOLD_SECONDS = "15"
"""Long enough to see the expansion and kill the controller while `hold` runs."""


def queue_run(store: Store) -> int:
    dag = Dag(
        name="dynamic",
        max_active_tasks=1,
        tasks=(
            task(
                "list",
                result_format=ResultFormat.JSON,
                overrides=scripted(**{"termination-message": json.dumps(ITEMS)}),
            ),
            task("hold", depends_on=("list",), overrides=scripted(duration=HOLD_SECONDS)),
            task(
                "each",
                depends_on=("list",),
                items_from="list",
                command=("load", "{{ item }}"),
                overrides=scripted(**{"termination-message": "ok"}),
            ),
            task(
                "last",
                depends_on=("each",),
                command=("report", "{{ tasks.each.result }}"),
                overrides=scripted(),
            ),
        ),
    )
    return queued_run(store, dag)


def rows_of(store: Store, run_id: int) -> dict[tuple[str, int], TaskInstanceRecord]:
    with store.transaction() as uow:
        return {(r.task_name, r.item_index): r for r in uow.list_task_instances(run_id)}


def expanded_behind_hold(store: Store, run_id: int) -> bool:
    rows = rows_of(store, run_id)
    hold = rows.get(("hold", 0))
    return (
        hold is not None
        and hold.state in (TaskState.LAUNCHED, TaskState.RUNNING)
        and all(("each", index) in rows for index in range(len(ITEMS)))
    )


def test_a_controller_killed_between_expansion_and_launch_launches_each_item_once(
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
            wait_for(
                lambda: expanded_behind_hold(e2e_store, run_id),
                timeout=60,
                what="the fan-out to be expanded while `hold` runs",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            # Killed between the expansion and its launch: rows, but no pod yet.
            expanded = rows_of(e2e_store, run_id)
            assert [expanded[("each", i)].state for i in range(len(ITEMS))] == [
                TaskState.PENDING
            ] * len(ITEMS), log.read_text()[-3000:]
            pods, _ = list_pods(
                api, namespace=namespace, label_selector=f"{SELECTOR},{naming.TASK_LABEL}=each"
            )
            assert pods == []
            second = start_controller(controller_env, log)
            assert second.wait(150) == 0, log.read_text()[-3000:]
            rows = rows_of(e2e_store, run_id)
            audit.wait_seen(row.pod_name for row in rows.values() if row.pod_name)
        finally:
            audit.stop()
    with e2e_store.transaction() as uow:
        run = uow.get_run(run_id)
    assert run is not None
    assert run.state is DagRunState.SUCCEEDED, log.read_text()[-3000:]
    # Expanded once: one first try per element, each with its item, nothing more.
    assert sorted(rows) == sorted(
        [("list", 0), ("hold", 0), ("last", 0)] + [("each", i) for i in range(len(ITEMS))]
    )
    assert [rows[("each", i)].item for i in range(len(ITEMS))] == ITEMS
    assert all(r.try_number == 1 and r.state is TaskState.SUCCEEDED for r in rows.values())
    # Launched once: one pod (one uid) per instance, each rendering its own item.
    assert {name: len(uids) for name, uids in audit.uids.items()} == {
        r.pod_name: 1 for r in rows.values()
    }
    for index, item in enumerate(ITEMS):
        spec = audit.specs[rows[("each", index)].pod_name or ""]
        assert spec["containers"][0]["command"] == ["load", item]
    last = audit.specs[rows[("last", 0)].pod_name or ""]
    assert last["containers"][0]["command"] == ["report", '["ok","ok","ok"]']
