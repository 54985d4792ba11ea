"""Marking a task instance succeeded or failed by hand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from controller.base.states import DagRunState, TaskState
from controller.engine.clearing import (
    InstanceRef,
    downstream_to_clear,
)
from controller.engine.graph import GraphCache
from controller.engine.rendering import ResultError, parse_result
from controller.engine.seam import PodStop
from controller.runtime.actions.common import (
    UNFINISHED,
    ActionRefusedError,
    Applied,
    check_instance,
    clear_instances,
    end_tries,
    graph_of,
    item_of,
    latest_tries,
    pod_stops,
    require_run,
    who,
)
from controller.store import (
    ActionRequestRecord,
    DagRunRecord,
    NewTaskInstance,
    TaskInstanceRecord,
    UnitOfWork,
)

MARKABLE = (TaskState.SUCCEEDED, TaskState.FAILED)


@dataclass(frozen=True)
class MarkTask:
    run: DagRunRecord
    row: TaskInstanceRecord | None
    state: TaskState
    clear: set[InstanceRef]
    latest: Mapping[InstanceRef, TaskInstanceRecord]


def check_mark_task(
    uow: UnitOfWork,
    run_id: int,
    task: str,
    item_index: int,
    *,
    state: str,
    result: str | None,
    graphs: GraphCache,
) -> MarkTask:
    run = require_run(uow, run_id)
    graph = graph_of(run.spec, graphs)
    check_instance(graph, task, item_index)
    try:
        target = TaskState(state)
    except ValueError:
        target = TaskState.PENDING
    if target not in MARKABLE:
        raise ActionRefusedError(f"a task can be marked succeeded or failed, not {state!r}")
    if target is TaskState.FAILED and result is not None:
        raise ActionRefusedError("only a task marked succeeded has a result")
    if target is TaskState.SUCCEEDED:
        try:
            parse_result(graph.tasks[graph.index[task]], result)
        except ResultError as error:
            raise ActionRefusedError(f"{error}; pass a JSON --result") from None
    if run.state is DagRunState.QUEUED:
        raise ActionRefusedError(f"run {run.id} has not started; mark its tasks once it runs")
    latest = latest_tries(uow.list_task_instances(run_id))
    row = latest.get((task, item_index))
    if row is not None and row.state is target:
        raise ActionRefusedError(
            f"{task}[{item_index}] of run {run.id} is {target.value} already (try {row.try_number})"
        )
    states = {ref: latest_row.state for ref, latest_row in latest.items()}
    return MarkTask(run, row, target, downstream_to_clear(graph, states, task=task), latest)


def apply_mark_task(
    uow: UnitOfWork, request: ActionRequestRecord, *, now: datetime, graphs: GraphCache
) -> Applied:
    assert request.run_id is not None
    assert request.task_name is not None
    result = request.options.get("result")
    plan = check_mark_task(
        uow,
        request.run_id,
        request.task_name,
        request.item_index or 0,
        state=str(request.options.get("state")),
        result=result,
        graphs=graphs,
    )
    task, item_index, row = request.task_name, request.item_index or 0, plan.row
    stops: list[PodStop] = []
    if plan.state is TaskState.SUCCEEDED and result is None:
        result = ""
    if row is not None and row.state in UNFINISHED:
        end_tries(uow, [row], plan.state, request=request, now=now, result=result)
        stops = pod_stops([row], request.options.get("grace_seconds"))
        try_number = row.try_number
    else:
        try_number = 1 if row is None else row.try_number + 1
        uow.add_task_instances(
            [
                NewTaskInstance(
                    run_id=plan.run.id,
                    task_name=task,
                    item_index=item_index,
                    item=item_of(plan.run, task, item_index, graphs),
                    try_number=try_number,
                    state=plan.state,
                    finished_at=now,
                    set_by=request.requested_by,
                    reason=f"Marked{plan.state.value.capitalize()}",
                    message=f"{plan.state.value} by {who(request)}",
                    result=result if plan.state is TaskState.SUCCEEDED else None,
                )
            ]
        )
    clear_instances(uow, plan.run, sorted(plan.clear), plan.latest, request=request)
    uow.append_event(
        kind="task-marked",
        message=f"{task}[{item_index}] marked {plan.state.value} by {who(request)}"
        + (f"; {len(plan.clear)} downstream instances cleared" if plan.clear else ""),
        dag_name=plan.run.dag_name,
        run_id=plan.run.id,
        task_name=task,
        item_index=item_index,
        try_number=try_number,
        at=now,
    )
    applied = Applied(
        outcome=f"{task}[{item_index}] marked {plan.state.value} as try {try_number}",
        stops=stops,
    )
    if plan.run.state.finished:
        if not uow.cas_run_state(
            plan.run.id, expected=plan.run.state, new=DagRunState.QUEUED, finished_at=None
        ):
            raise ActionRefusedError(
                f"run {plan.run.id} changed while a task was marked; ask again"
            )
        applied.requeued = True
    else:
        applied.rebuild.add(plan.run.id)
    return applied
