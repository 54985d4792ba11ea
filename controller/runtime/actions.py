"""Operators' requests on runs (cancel, retry, mark), checked and applied inside a transaction.

Each kind is split in two: `check_*` reads the run and decides what the request would
change, refusing (ActionRefusedError, with a message for the user) what makes no sense:
cancelling a finished run, retrying a running one, an unknown task. The CLI and the API
call the check before queuing a request, so a user learns at once; the engine calls it
again when it applies the request in its loop (the run may have moved on meanwhile) and
then writes the changes, in the same transaction as the request's answer.

The engine is the only writer because it holds the planners of running runs: a change
under a running run is followed by rebuilding its planner from the rows, and a finished
run that is retried goes back to QUEUED, so it starts within maxActiveRuns like any run
and is planned from its rows (CLEARED ones included) when it does.

Every apply is idempotent: applying a request again after a crash finds the run already
moved, and a cancel of a cancelled run only stops its pods again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.engine.clearing import (
    InstanceRef,
    downstream_to_clear,
    failed_to_clear,
    misfit,
    task_to_clear,
)
from controller.engine.graph import GraphCache, RunGraph
from controller.engine.rendering import ResultError, parse_result
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

CANCEL_RUN = "cancel-run"
CANCEL_TASK = "cancel-task"
RETRY_RUN = "retry-run"
MARK_TASK = "mark-task"
KINDS = (CANCEL_RUN, CANCEL_TASK, RETRY_RUN, MARK_TASK)

UNFINISHED = (TaskState.PENDING, TaskState.LAUNCHED, TaskState.RUNNING)
MARKABLE = (TaskState.SUCCEEDED, TaskState.FAILED)


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


# -- reading a run --------------------------------------------------------------------


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


def _instance(graph: RunGraph, task: str, item_index: int | None) -> None:
    position = graph.index.get(task)
    if position is None:
        known = ", ".join(sorted(graph.index))
        raise NotFoundError(f"the run has no task {task!r} (its tasks: {known})")
    size = graph.fan_out[position]
    if item_index is not None and not 0 <= item_index < size:
        raise ActionRefusedError(
            f"task {task!r} has items 0..{size - 1}; there is no item {item_index}"
        )


def _who(request: ActionRequestRecord) -> str:
    return f"{request.requested_by} (request {request.id})"


# -- cancel ---------------------------------------------------------------------------


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


def _apply_cancel_run(uow: UnitOfWork, request: ActionRequestRecord, *, now: datetime) -> Applied:
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
        _end_tries(uow, plan.unfinished, TaskState.CANCELLED, request=request, now=now)
        uow.append_event(
            kind="run-cancelled",
            message=f"run {plan.run.id} of {plan.run.dag_name} cancelled by {_who(request)}: "
            f"{len(plan.unfinished)} unfinished tries stopped",
            dag_name=plan.run.dag_name,
            run_id=plan.run.id,
            data={"requestedBy": request.requested_by, "request": request.id},
            at=now,
        )
    applied.stops = _stops(plan.unfinished, grace)
    return applied


@dataclass(frozen=True)
class CancelTask:
    run: DagRunRecord
    row: TaskInstanceRecord


def check_cancel_task(
    uow: UnitOfWork, run_id: int, task: str, item_index: int, *, graphs: GraphCache
) -> CancelTask:
    run = require_run(uow, run_id)
    _instance(graph_of(run.spec, graphs), task, item_index)
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


def _apply_cancel_task(
    uow: UnitOfWork, request: ActionRequestRecord, *, now: datetime, graphs: GraphCache
) -> Applied:
    assert request.run_id is not None
    assert request.task_name is not None
    plan = check_cancel_task(
        uow, request.run_id, request.task_name, request.item_index or 0, graphs=graphs
    )
    _end_tries(uow, [plan.row], TaskState.CANCELLED, request=request, now=now)
    row = plan.row
    uow.append_event(
        kind="task-cancelled",
        message=f"{row.task_name}[{row.item_index}] try {row.try_number} cancelled by "
        f"{_who(request)}",
        dag_name=row.dag_name,
        run_id=row.run_id,
        task_name=row.task_name,
        item_index=row.item_index,
        try_number=row.try_number,
        at=now,
    )
    return Applied(
        outcome=f"{row.task_name}[{row.item_index}] try {row.try_number} cancelled",
        stops=_stops([row], request.options.get("grace_seconds")),
        rebuild={row.run_id},
    )


def _end_tries(
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
                    "message": f"{state.value} by {_who(request)}",
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


def _stops(rows: Sequence[TaskInstanceRecord], grace: Any) -> list[PodStop]:
    seconds = grace if isinstance(grace, int) else None
    return [
        PodStop(row.id, row.pod_name, row.namespace, seconds)
        for row in rows
        if row.pod_name and row.state is not TaskState.PENDING
    ]


# -- retry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryRun:
    run: DagRunRecord
    clear: list[InstanceRef]
    latest: Mapping[InstanceRef, TaskInstanceRecord]
    revision: str
    spec: dict[str, Any]


def check_retry_run(
    uow: UnitOfWork,
    run_id: int,
    *,
    graphs: GraphCache,
    latest_version: bool = False,
    task: str | None = None,
    item_index: int | None = None,
) -> RetryRun:
    run = require_run(uow, run_id)
    if not run.state.finished:
        raise ActionRefusedError(
            f"run {run.id} of {run.dag_name} is {run.state.value}; only a finished run can be "
            "retried (cancel it first)"
        )
    rows = uow.list_task_instances(run_id)
    latest = latest_tries(rows)
    revision, spec = run.revision, run.spec
    if latest_version:
        dag = uow.get_dag(run.dag_name)
        if dag is None or dag.spec is None:
            raise ActionRefusedError(f"DAG {run.dag_name} has no valid version to retry with")
        revision, spec = dag.spec_revision or dag.revision, dag.spec
    graph = graph_of(spec, graphs)
    if latest_version:
        why = misfit(graph, latest)
        if why is not None:
            raise ActionRefusedError(
                f"the newest version of {run.dag_name} (at {revision[:12]}) cannot carry run "
                f"{run.id}: {why}; retry it without --latest, or trigger a new run"
            )
    states = {ref: row.state for ref, row in latest.items()}
    if task is not None:
        _instance(graph, task, item_index)
        clear = task_to_clear(graph, states, task=task, item_index=item_index)
        if not clear:
            raise ActionRefusedError(f"{task} of run {run.id} has not finished; nothing to retry")
    else:
        clear = failed_to_clear(graph, states)
        if not clear:
            raise ActionRefusedError(
                f"run {run.id} of {run.dag_name} {run.state.value} with no failed task; "
                "nothing to retry (--task TASK reruns a task and its downstream)"
            )
    return RetryRun(run, clear, latest, revision, spec)


def _apply_retry_run(
    uow: UnitOfWork, request: ActionRequestRecord, *, now: datetime, graphs: GraphCache
) -> Applied:
    assert request.run_id is not None
    plan = check_retry_run(
        uow,
        request.run_id,
        graphs=graphs,
        latest_version=bool(request.options.get("latest")),
        task=request.task_name,
        item_index=request.item_index,
    )
    _clear(uow, plan.run, plan.clear, plan.latest, request=request)
    if not uow.cas_run_state(
        plan.run.id,
        expected=plan.run.state,
        new=DagRunState.QUEUED,
        finished_at=None,
        revision=plan.revision,
        spec=plan.spec,
    ):
        raise ActionRefusedError(f"run {plan.run.id} changed while it was being retried; ask again")
    repinned = "" if plan.revision == plan.run.revision else f", re-pinned to {plan.revision[:12]}"
    uow.append_event(
        kind="run-retried",
        message=f"run {plan.run.id} of {plan.run.dag_name} retried by {_who(request)}: "
        f"{len(plan.clear)} task instances cleared{repinned}",
        dag_name=plan.run.dag_name,
        run_id=plan.run.id,
        data={"cleared": [list(ref) for ref in plan.clear], "revision": plan.revision},
        at=now,
    )
    return Applied(
        outcome=f"run {plan.run.id} queued again with {len(plan.clear)} cleared task "
        f"instances{repinned}",
        requeued=True,
    )


def _clear(
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
            message=f"cleared by {_who(request)}",
        )
        for task, item_index in refs
    ]
    if len(uow.add_task_instances(new)) != len(new):
        raise ActionRefusedError(f"run {run.id} changed while it was being retried; ask again")


# -- mark -----------------------------------------------------------------------------


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
    _instance(graph, task, item_index)
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


def _apply_mark_task(
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
        _end_tries(uow, [row], plan.state, request=request, now=now, result=result)
        stops = _stops([row], request.options.get("grace_seconds"))
        try_number = row.try_number
    else:
        try_number = 1 if row is None else row.try_number + 1
        uow.add_task_instances(
            [
                NewTaskInstance(
                    run_id=plan.run.id,
                    task_name=task,
                    item_index=item_index,
                    item=_item(plan.run, task, item_index, graphs),
                    try_number=try_number,
                    state=plan.state,
                    finished_at=now,
                    set_by=request.requested_by,
                    reason=f"Marked{plan.state.value.capitalize()}",
                    message=f"{plan.state.value} by {_who(request)}",
                    result=result if plan.state is TaskState.SUCCEEDED else None,
                )
            ]
        )
    _clear(uow, plan.run, sorted(plan.clear), plan.latest, request=request)
    uow.append_event(
        kind="task-marked",
        message=f"{task}[{item_index}] marked {plan.state.value} by {_who(request)}"
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


def _item(run: DagRunRecord, task: str, item_index: int, graphs: GraphCache) -> Any:
    graph = graph_of(run.spec, graphs)
    items = graph.tasks[graph.index[task]].with_items
    return None if items is None else items[item_index]


# -- dispatch -------------------------------------------------------------------------


def apply_request(
    uow: UnitOfWork, request: ActionRequestRecord, *, now: datetime, graphs: GraphCache
) -> Applied:
    """Apply one pending request inside `uow`; raises ActionRefusedError to reject it."""
    if request.kind == CANCEL_RUN:
        return _apply_cancel_run(uow, request, now=now)
    if request.kind == CANCEL_TASK:
        return _apply_cancel_task(uow, request, now=now, graphs=graphs)
    if request.kind == RETRY_RUN:
        return _apply_retry_run(uow, request, now=now, graphs=graphs)
    if request.kind == MARK_TASK:
        return _apply_mark_task(uow, request, now=now, graphs=graphs)
    raise ActionRefusedError(f"unknown request kind {request.kind!r} (known: {', '.join(KINDS)})")
