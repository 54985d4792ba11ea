"""Cancelling a run, or one task instance of a running run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controller.base.states import DagRunState, TaskState
from controller.engine.graph import GraphCache
from controller.runtime.actions.common import (
    UNFINISHED,
    ActionRefusedError,
    Applied,
    check_instance,
    end_tries,
    graph_of,
    latest_tries,
    pod_stops,
    require_run,
    who,
)
from controller.store import (
    ActionRequestRecord,
    DagRunRecord,
    TaskInstanceRecord,
    UnitOfWork,
)


@dataclass(frozen=True)
class CancelRun:
    run: DagRunRecord
    unfinished: list[TaskInstanceRecord]
    already: bool
    """The run is cancelled already: only its pods are stopped (again)."""


def check_cancel_run(uow: UnitOfWork, run_id: int) -> CancelRun:
    run = require_run(uow, run_id)
    rows = uow.list_task_instances(run_id)
    if run.state is DagRunState.CANCELLED:
        stopped = [row for row in rows if row.state is TaskState.CANCELLED and row.pod_name]
        return CancelRun(run, stopped, already=True)
    if run.state.finished:
        raise ActionRefusedError(
            f"run {run.id} of {run.dag_name} already {run.state.value}; only a queued or "
            "running run can be cancelled"
        )
    return CancelRun(run, [row for row in rows if row.state in UNFINISHED], already=False)


def apply_cancel_run(uow: UnitOfWork, request: ActionRequestRecord, *, now: datetime) -> Applied:
    assert request.run_id is not None
    plan = check_cancel_run(uow, request.run_id)
    grace = request.options.get("grace_seconds")
    applied = Applied(outcome=f"run {plan.run.id} cancelled", forget={plan.run.id})
    if plan.already:
        applied.outcome = f"run {plan.run.id} was cancelled already; its pods are stopped"
    else:
        if not uow.cas_run_state(
            plan.run.id,
            expected=(DagRunState.QUEUED, DagRunState.RUNNING),
            new=DagRunState.CANCELLED,
            finished_at=now,
        ):
            raise ActionRefusedError(f"run {plan.run.id} finished while it was being cancelled")
        end_tries(uow, plan.unfinished, TaskState.CANCELLED, request=request, now=now)
        uow.append_event(
            kind="run-cancelled",
            message=f"run {plan.run.id} of {plan.run.dag_name} cancelled by {who(request)}: "
            f"{len(plan.unfinished)} unfinished tries stopped",
            dag_name=plan.run.dag_name,
            run_id=plan.run.id,
            data={"requestedBy": request.requested_by, "request": request.id},
            at=now,
        )
    applied.stops = pod_stops(plan.unfinished, grace)
    return applied


@dataclass(frozen=True)
class CancelTask:
    run: DagRunRecord
    row: TaskInstanceRecord


def check_cancel_task(
    uow: UnitOfWork, run_id: int, task: str, item_index: int, *, graphs: GraphCache
) -> CancelTask:
    run = require_run(uow, run_id)
    check_instance(graph_of(run.spec, graphs), task, item_index)
    if run.state is not DagRunState.RUNNING:
        raise ActionRefusedError(
            f"run {run.id} is {run.state.value}; a task can be cancelled in a running run only"
        )
    row = latest_tries(uow.list_task_instances(run_id)).get((task, item_index))
    if row is None:
        raise ActionRefusedError(f"{task}[{item_index}] of run {run.id} has not started")
    if row.state not in UNFINISHED:
        raise ActionRefusedError(
            f"{task}[{item_index}] of run {run.id} is not running: its try {row.try_number} "
            f"is {row.state.value}"
        )
    return CancelTask(run, row)


def apply_cancel_task(
    uow: UnitOfWork, request: ActionRequestRecord, *, now: datetime, graphs: GraphCache
) -> Applied:
    assert request.run_id is not None
    assert request.task_name is not None
    plan = check_cancel_task(
        uow, request.run_id, request.task_name, request.item_index or 0, graphs=graphs
    )
    end_tries(uow, [plan.row], TaskState.CANCELLED, request=request, now=now)
    row = plan.row
    uow.append_event(
        kind="task-cancelled",
        message=f"{row.key} cancelled by {who(request)}",
        dag_name=row.dag_name,
        run_id=row.run_id,
        task_name=row.task_name,
        item_index=row.item_index,
        try_number=row.try_number,
        at=now,
    )
    return Applied(
        outcome=f"{row.key} cancelled",
        stops=pod_stops([row], request.options.get("grace_seconds")),
        rebuild={row.run_id},
    )
