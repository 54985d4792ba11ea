"""Putting runs and LAUNCHED tries in the store, and a sink that commits them, for executor tests.

The executor is tested against the real store and the real API server; what stands in
for the engine is only this: rows written as the engine writes them (PENDING -> LAUNCHED
with the pod name, before launching), and an UpdateSink that commits through the
engine's own transaction code and builds relaunch orders with the engine's builder.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from controller.base import naming
from controller.base.states import DagRunState, RunType, TaskState
from controller.engine.graph import GraphCache
from controller.engine.rendering import RenderedTask
from controller.engine.retries import DEFAULT_MAX_INFRA_RETRIES
from controller.engine.seam import CursorUpdate, LaunchOrder, TaskUpdate
from controller.runtime.launching import orders_to_relaunch
from controller.runtime.updates import commit_updates
from controller.spec.model import Dag, Task, dag_to_dict
from controller.store import DagRunRecord, NewTaskInstance, Store, TaskInstanceRecord, UnitOfWork

REVISION = "0" * 40


class StoreSink:
    """Commits updates and cursor in one transaction, as the engine's sink does."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.applied: list[TaskUpdate] = []

    def apply(
        self, updates: Sequence[TaskUpdate], *, cursor: CursorUpdate | None = None
    ) -> list[int]:
        with self._lock, self._store.transaction() as uow:
            changed = commit_updates(uow, updates, cursor=cursor, now=datetime.now(UTC))
            self.applied.extend(updates)
        return [record.id for record in changed]

    def relaunch_orders(self, task_instance_ids: Sequence[int]) -> list[LaunchOrder]:
        return orders_to_relaunch(
            self._store,
            task_instance_ids,
            graphs=GraphCache(),
            now=datetime.now(UTC),
            max_infra_retries=DEFAULT_MAX_INFRA_RETRIES,
        )


def scripted(**annotations: str) -> dict[str, Any]:
    """podOverrides making the node agent script the pod instead of running it."""
    values = {"agent.kubedag.io/mode": "scripted"}
    values.update({f"agent.kubedag.io/{key}": value for key, value in annotations.items()})
    return {"annotations": values}


def task(name: str, *, overrides: Mapping[str, Any] | None = None, **fields: Any) -> Task:
    fields.setdefault("command", ("true",))
    return Task(name=name, image="busybox:1.36", pod_overrides=dict(overrides or {}), **fields)


def queued_run(store: Store, dag: Dag) -> int:
    """A queued run of ``dag``, as a trigger leaves it for the controller to start."""
    with store.transaction() as uow:
        return create_run(uow, dag, DagRunState.QUEUED).id


def create_run(uow: UnitOfWork, dag: Dag, state: DagRunState) -> DagRunRecord:
    """``dag`` synced at REVISION, and a manual run of it in ``state``."""
    spec = dag_to_dict(dag)
    uow.upsert_dag(
        name=dag.name, path=f"{dag.name}.yaml", revision=REVISION, spec_hash="h", spec=spec
    )
    run, _ = uow.create_run(
        dag_name=dag.name,
        logical_date=datetime.now(UTC),
        run_type=RunType.MANUAL,
        revision=REVISION,
        spec=spec,
        state=state,
    )
    return run


def launched_run(
    store: Store, dag: Dag, *, namespace: str, items: Mapping[str, int] | None = None
) -> tuple[int, list[TaskInstanceRecord]]:
    """A running run of ``dag`` with try 1 of every task instance LAUNCHED, as the engine does."""
    with store.transaction() as uow:
        run = create_run(uow, dag, DagRunState.RUNNING)
        new = [
            NewTaskInstance(run_id=run.id, task_name=t.name, item_index=i)
            for t in dag.tasks
            for i in range((items or {}).get(t.name, 1))
        ]
        created = uow.add_task_instances(new)
        for row in created:
            name = naming.pod_name(dag=dag.name, key=row.key)
            uow.cas_task_state(
                row.id,
                expected=TaskState.PENDING,
                new=TaskState.LAUNCHED,
                pod_name=name,
                namespace=namespace,
                launched_at=datetime.now(UTC),
            )
        rows = uow.list_task_instances(run.id)
    return run.id, rows


def orders_for(dag: Dag, rows: Sequence[TaskInstanceRecord]) -> list[LaunchOrder]:
    tasks = {t.name: t for t in dag.tasks}
    return [
        LaunchOrder(
            task_instance_id=row.id,
            key=row.key,
            dag_name=dag.name,
            dag_path=f"{dag.name}.yaml",
            revision=REVISION,
            task=tasks[row.task_name],
            rendered=RenderedTask(command=tasks[row.task_name].command, args=(), env=()),
            pod_name=str(row.pod_name),
        )
        for row in rows
    ]


def rows_of(store: Store, run_id: int) -> dict[str, TaskInstanceRecord]:
    with store.transaction() as uow:
        return {f"{r.task_name}/{r.item_index}": r for r in uow.list_task_instances(run_id)}


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 30.0, what: str = "the condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
