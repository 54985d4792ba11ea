"""Retrying a finished run: clearing its failed instances (or one task's) and queuing it again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.base.states import DagRunState
from controller.engine.clearing import (
    InstanceRef,
    failed_to_clear,
    misfit,
    task_to_clear,
)
from controller.engine.graph import GraphCache
from controller.runtime.actions.common import (
    ActionRefusedError,
    Applied,
    check_instance,
    clear_instances,
    graph_of,
    latest_tries,
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
        check_instance(graph, task, item_index)
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


def apply_retry_run(
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
    clear_instances(uow, plan.run, plan.clear, plan.latest, request=request)
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
        message=f"run {plan.run.id} of {plan.run.dag_name} retried by {who(request)}: "
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
