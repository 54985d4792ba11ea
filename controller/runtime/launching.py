"""From due PENDING tries to LaunchOrders: render, name, and claim them in one transaction.

The order of operations is the crash story. A try is rendered first (a template that
cannot render fails the try as a task failure instead of launching a broken pod), then
claimed by a compare-and-set PENDING -> LAUNCHED that records its deterministic pod name,
and only after that commit is it handed to the executor. A crash in between leaves a
LAUNCHED row with a pod name, which the next engine hands out again under the same name.
A claim that loses means another writer moved the row: the caller rebuilds that run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial

from controller.base.naming import pod_name
from controller.base.states import FailureKind, TaskState
from controller.base.tries import TryKey
from controller.engine.graph import GraphCache
from controller.engine.records import InstanceKey
from controller.engine.seam import Executor, LaunchOrder
from controller.runtime.active import ActiveRun, recover_run
from controller.runtime.pending import PendingQueue, PendingTry
from controller.runtime.slots import ActiveSlots
from controller.runtime.starting import DEFAULT_MAX_ACTIVE_TASKS, DagLimits
from controller.spec.templates import TemplateError
from controller.store import StateChange, Store, TaskInstanceRecord, UnitOfWork

log = logging.getLogger(__name__)

TEMPLATE_ERROR_REASON = "TemplateError"


def launch_order(
    run: ActiveRun,
    *,
    ti_id: int,
    key: TryKey,
    pod: str,
    relaunch: bool,
) -> LaunchOrder:
    """The order for one try, rendered by its run's planner; raises TemplateError."""
    return LaunchOrder(
        task_instance_id=ti_id,
        key=key,
        dag_name=run.dag_name,
        dag_path=run.dag_path,
        revision=run.record.revision,
        task=run.task(key.task),
        rendered=run.planner.render(InstanceKey(key.task, key.item_index)),
        pod_name=pod,
        relaunch=relaunch,
    )


def take_within_caps(
    pending: PendingQueue,
    slots: ActiveSlots,
    limits: Mapping[str, DagLimits],
    *,
    parallelism: int,
) -> list[PendingTry]:
    """Due tries to launch now: each run within its DAG's maxActiveTasks, all within
    parallelism."""
    free = parallelism - len(slots)
    taken: list[PendingTry] = []
    for dag_name in pending.dags_with_due():
        if free <= 0:
            break
        dag = limits.get(dag_name)
        cap = DEFAULT_MAX_ACTIVE_TASKS if dag is None else dag.max_active_tasks
        got = pending.take(dag_name, free, run_room=partial(_room, cap, slots))
        free -= len(got)
        taken.extend(got)
    return taken


def _room(cap: int, slots: ActiveSlots, run_id: int) -> int:
    return cap - slots.of_run(run_id)


def build_orders(
    chunk: Sequence[PendingTry], runs: Mapping[int, ActiveRun]
) -> tuple[list[LaunchOrder], list[tuple[PendingTry, str]]]:
    """The orders of ``chunk``'s tries, and the tries whose templates do not render.

    Tries of runs no longer active (finished, or being rebuilt) are left out.
    """
    orders: list[LaunchOrder] = []
    broken: list[tuple[PendingTry, str]] = []
    for entry in chunk:
        run = runs.get(entry.key.run_id)
        if run is None:
            continue
        name = pod_name(dag=entry.dag_name, key=entry.key)
        try:
            orders.append(
                launch_order(run, ti_id=entry.ti_id, key=entry.key, pod=name, relaunch=False)
            )
        except TemplateError as error:
            broken.append((entry, str(error)))
    return orders, broken


def claim(
    uow: UnitOfWork,
    orders: Sequence[LaunchOrder],
    broken: Sequence[tuple[PendingTry, str]],
    *,
    now: datetime,
) -> tuple[list[LaunchOrder], set[int]]:
    """CAS the orders to LAUNCHED and the unrenderable tries to FAILED.

    Returns the orders this call claimed, and the runs to rebuild from their rows (a
    lost claim, or a try failed here that the planner has not seen).
    """
    changes = [
        StateChange(
            order.task_instance_id,
            expected=(TaskState.PENDING,),
            new=TaskState.LAUNCHED,
            fields={"pod_name": order.pod_name, "launched_at": now},
        )
        for order in orders
    ]
    claimed: list[LaunchOrder] = []
    stale: set[int] = set()
    for order, won in zip(orders, uow.cas_task_states(changes), strict=True):
        if won:
            claimed.append(order)
        else:
            stale.add(order.key.run_id)
    for entry, message in broken:
        uow.cas_task_state(
            entry.ti_id,
            expected=TaskState.PENDING,
            new=TaskState.FAILED,
            failure_kind=FailureKind.TASK,
            reason=TEMPLATE_ERROR_REASON,
            message=message,
            finished_at=now,
        )
        uow.append_event(
            kind="task-failed",
            message=f"{entry.key}: {message}",
            dag_name=entry.dag_name,
            run_id=entry.key.run_id,
            task_name=entry.key.task,
            item_index=entry.key.item_index,
            try_number=entry.key.try_number,
            at=now,
        )
        stale.add(entry.key.run_id)
    return claimed, stale


def relaunch_orders(run: ActiveRun, rows: Sequence[TaskInstanceRecord]) -> list[LaunchOrder]:
    """The run's LAUNCHED tries, to hand out again under their recorded pod names."""
    return [
        launch_order(run, ti_id=row.id, key=row.key, pod=row.pod_name, relaunch=True)
        for row in rows
        if row.state is TaskState.LAUNCHED and row.pod_name
    ]


def orders_to_relaunch(
    store: Store,
    task_instance_ids: Sequence[int],
    *,
    graphs: GraphCache,
    now: datetime,
    max_infra_retries: int,
) -> list[LaunchOrder]:
    """The orders of those tries that are still LAUNCHED, under their recorded pod names.

    Each run's planner is rebuilt from all its rows, so a try renders exactly as when it
    was first launched. Tries of runs that are gone are left out.
    """
    with store.transaction() as uow:
        wanted = uow.get_task_instances(task_instance_ids)
    ids = {row.id for row in wanted}
    orders: list[LaunchOrder] = []
    for run_id in sorted({row.run_id for row in wanted}):
        with store.transaction() as uow:
            run = uow.get_run(run_id)
            rows = uow.list_task_instances(run_id)
            dag = None if run is None else uow.get_dag(run.dag_name)
        if run is None:
            continue
        active, _ = recover_run(
            run,
            rows,
            dag_path=None if dag is None else dag.path,
            graphs=graphs,
            now=now,
            max_infra_retries=max_infra_retries,
        )
        orders.extend(relaunch_orders(active, [row for row in rows if row.id in ids]))
    return orders


def hand_out(executor: Executor, orders: list[LaunchOrder]) -> None:
    if not orders:
        return
    for order in orders:
        log.debug(
            "launching %s",
            order.pod_name,
            extra={
                "dag": order.dag_name,
                "run": order.key.run_id,
                "task": order.key.task,
                "try": order.key.try_number,
            },
        )
    executor.launch(orders)
