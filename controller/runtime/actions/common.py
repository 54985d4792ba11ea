"""What every operator action shares: its errors, what it hands the engine, run reading helpers,
and the writes several actions make (ending tries by hand, clearing instances).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.base.states import FailureKind, TaskState
from controller.engine.clearing import InstanceRef
from controller.engine.graph import GraphCache, RunGraph
from controller.engine.seam import PodStop
from controller.runtime.active import spec_digest
from controller.spec.model import dag_from_dict
from controller.store import (
    ActionRequestRecord,
    DagRunRecord,
    NewTaskInstance,
    StateChange,
    TaskInstanceRecord,
    UnitOfWork,
)

UNFINISHED = (TaskState.PENDING, TaskState.LAUNCHED, TaskState.RUNNING)


class ActionRefusedError(ValueError):
    """The request cannot be applied to the run as it is; the message says why."""


class NotFoundError(ActionRefusedError):
    """The run (or DAG, or task) the request names does not exist."""


@dataclass
class Applied:
    """What the engine does after the transaction that applied a request commits."""

    outcome: str
    stops: list[PodStop] = field(default_factory=list)
    rebuild: set[int] = field(default_factory=set)
    """Running runs whose rows changed under their planner."""
    forget: set[int] = field(default_factory=set)
    """Runs that ended here: their planners and pending tries go."""
    requeued: bool = False


def require_run(uow: UnitOfWork, run_id: int) -> DagRunRecord:
    run = uow.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id {run_id}; `kubedag runs` lists them")
    return run


def latest_tries(rows: Sequence[TaskInstanceRecord]) -> dict[InstanceRef, TaskInstanceRecord]:
    """Each instance's newest try."""
    latest: dict[InstanceRef, TaskInstanceRecord] = {}
    for row in rows:
        ref = (row.task_name, row.item_index)
        if ref not in latest or row.try_number > latest[ref].try_number:
            latest[ref] = row
    return latest


def graph_of(spec: dict[str, Any], graphs: GraphCache) -> RunGraph:
    return graphs.get(dag_from_dict(spec), spec_hash=spec_digest(spec))


def check_instance(graph: RunGraph, task: str, item_index: int | None) -> None:
    position = graph.index.get(task)
    if position is None:
        known = ", ".join(sorted(graph.index))
        raise NotFoundError(f"the run has no task {task!r} (its tasks: {known})")
    size = graph.fan_out[position]
    if item_index is not None and not 0 <= item_index < size:
        raise ActionRefusedError(
            f"task {task!r} has items 0..{size - 1}; there is no item {item_index}"
        )


def who(request: ActionRequestRecord) -> str:
    return f"{request.requested_by} (request {request.id})"


def end_tries(
    uow: UnitOfWork,
    rows: Sequence[TaskInstanceRecord],
    state: TaskState,
    *,
    request: ActionRequestRecord,
    now: datetime,
    result: str | None = None,
) -> None:
    reason = {TaskState.CANCELLED: "Cancelled"}.get(state, f"Marked{state.value.capitalize()}")
    won = uow.cas_task_states(
        [
            StateChange(
                row.id,
                expected=UNFINISHED,
                new=state,
                fields={
                    "finished_at": now,
                    "reason": reason,
                    "message": f"{state.value} by {who(request)}",
                    "result": result,
                    "failure_kind": FailureKind.TASK if state is TaskState.FAILED else None,
                    "set_by": request.requested_by,
                },
            )
            for row in rows
        ]
    )
    if not all(won):
        raise ActionRefusedError("a try finished while the request was applied; ask again")


def pod_stops(rows: Sequence[TaskInstanceRecord], grace: Any) -> list[PodStop]:
    seconds = grace if isinstance(grace, int) else None
    return [
        PodStop(row.id, row.pod_name, row.namespace, seconds)
        for row in rows
        if row.pod_name and row.state is not TaskState.PENDING
    ]


def clear_instances(
    uow: UnitOfWork,
    run: DagRunRecord,
    refs: Sequence[InstanceRef],
    latest: Mapping[InstanceRef, TaskInstanceRecord],
    *,
    request: ActionRequestRecord,
) -> None:
    new = [
        NewTaskInstance(
            run_id=run.id,
            task_name=task,
            item_index=item_index,
            item=latest[(task, item_index)].item,
            try_number=latest[(task, item_index)].try_number + 1,
            state=TaskState.CLEARED,
            set_by=request.requested_by,
            reason="Cleared",
            message=f"cleared by {who(request)}",
        )
        for task, item_index in refs
    ]
    if len(uow.add_task_instances(new)) != len(new):
        raise ActionRefusedError(f"run {run.id} changed while it was being retried; ask again")


def item_of(run: DagRunRecord, task: str, item_index: int, graphs: GraphCache) -> Any:
    graph = graph_of(run.spec, graphs)
    items = graph.tasks[graph.index[task]].with_items
    return None if items is None else items[item_index]
