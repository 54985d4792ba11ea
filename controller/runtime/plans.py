"""Writing a planner's decisions to the store, inside the caller's transaction.

The planner assumes its decisions happened, so the engine writes every `Plan` before
it asks the planner again, and tells the caller when the store disagreed: a new try
that already existed, a rejected result whose row is no longer succeeded, a run that
is no longer running. Each of those means another writer (a second controller, an
engine that crashed after writing) got there first and this planner is stale; the
engine then rebuilds the run's planner from fresh rows instead of guessing. Every write
here is idempotent over the store's unique keys, so deciding again is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.base.tries import TryKey
from controller.engine.records import InstanceOutcome, Instances, Plan
from controller.runtime.active import ActiveRun
from controller.store import NewTaskInstance, TaskInstanceRecord, UnitOfWork

REJECTED_REASON = "ResultRejected"
RUN_FAILING = "run-failing"
"""The event of a run whose failure is certain while instances are unfinished."""


@dataclass(frozen=True)
class Written:
    created: list[TaskInstanceRecord]
    consistent: bool
    """False when the store disagreed with the planner: rebuild it from the rows."""


def write_plan(uow: UnitOfWork, run: ActiveRun, plan: Plan, *, now: datetime) -> Written:
    new = [
        NewTaskInstance(
            run_id=run.run_id,
            task_name=try_.task,
            item_index=try_.item_index,
            item=try_.item,
            try_number=try_.try_number,
            not_before=try_.not_before,
        )
        for try_ in plan.create
    ]
    new.extend(
        NewTaskInstance(
            run_id=run.run_id,
            task_name=done.task,
            item_index=done.item_index,
            item=run.item(done.task, done.item_index),
            try_number=done.try_number,
            state=done.state,
            finished_at=now,
            failure_kind=done.failure_kind,
            message=done.message,
        )
        for done in plan.finish
    )
    created = uow.add_task_instances(new)
    consistent = len(created) == len(new)
    for rejected in plan.reject:
        ti_id = run.ids.get(
            TryKey(run.run_id, rejected.task, rejected.item_index, rejected.try_number)
        )
        won = ti_id is not None and uow.cas_task_state(
            ti_id,
            expected=TaskState.SUCCEEDED,
            new=TaskState.FAILED,
            failure_kind=FailureKind.TASK,
            reason=REJECTED_REASON,
            message=rejected.message,
        )
        consistent = consistent and won
        _event(
            uow, run, "task-result-rejected", rejected.message, rejected.task, rejected.try_number
        )
    for done in plan.finish:
        if done.message is not None:
            message = f"{done.task}[{done.item_index}] {done.state.value}: {done.message}"
            _event(uow, run, f"task-{done.state.value}", message, done.task, done.try_number)
    for key in plan.exhausted:
        message = f"{key.task}[{key.item_index}] failed with no retry left"
        _event(uow, run, "task-retries-exhausted", message, key.task, 0, item_index=key.item_index)
    for try_ in plan.create:
        if try_.try_number > 1:
            when = try_.not_before.isoformat() if try_.not_before else "now"
            message = f"{try_.task}[{try_.item_index}] retries as try {try_.try_number} at {when}"
            _event(uow, run, "task-retry", message, try_.task, try_.try_number)
    if plan.failing is not None and not uow.list_events(
        run_id=run.run_id, kind=RUN_FAILING, limit=1
    ):
        # Told once per run, also when its planner is rebuilt from the rows.
        uow.append_event(
            kind=RUN_FAILING,
            message=f"run {run.run_id} of {run.dag_name} will end failed "
            f"({_describe(plan.failing.failed)}) once these finish: "
            f"{_describe(plan.failing.unfinished)}",
            dag_name=run.dag_name,
            run_id=run.run_id,
            at=now,
        )
    if plan.run_state is not None:
        won = uow.cas_run_state(
            run.run_id, expected=DagRunState.RUNNING, new=plan.run_state, finished_at=now
        )
        consistent = consistent and won
        if won:
            why = f": {_describe(plan.failed)}" if plan.failed is not None else ""
            uow.append_event(
                kind=f"run-{plan.run_state.value}",
                message=f"run {run.run_id} of {run.dag_name} {plan.run_state.value}{why}",
                dag_name=run.dag_name,
                run_id=run.run_id,
                at=now,
            )
    return Written(created=created, consistent=consistent)


def _describe(instances: Instances) -> str:
    """`extract[0] try 2 failed, load[0] not started` and how many more."""
    text = ", ".join(_outcome(instance) for instance in instances.listed)
    more = instances.total - len(instances.listed)
    return f"{text} and {more} more" if more > 0 else text


def _outcome(instance: InstanceOutcome) -> str:
    name = f"{instance.task}[{instance.item_index}]"
    if instance.state is None:
        return f"{name} not started"
    return f"{name} try {instance.try_number} {instance.state.value}"


def write_plans(
    uow: UnitOfWork, items: Sequence[tuple[ActiveRun, Plan]], *, now: datetime
) -> list[tuple[ActiveRun, Plan, Written]]:
    """Write the plans that decided or told anything, each with what the store said of it."""
    return [(run, plan, write_plan(uow, run, plan, now=now)) for run, plan in items if plan.news]


def _event(
    uow: UnitOfWork,
    run: ActiveRun,
    kind: str,
    message: str,
    task: str,
    try_number: int,
    *,
    item_index: int | None = None,
) -> None:
    uow.append_event(
        kind=kind,
        message=message,
        dag_name=run.dag_name,
        run_id=run.run_id,
        task_name=task,
        item_index=item_index,
        try_number=try_number or None,
    )
