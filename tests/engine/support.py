"""Small builders for planner tests: DAGs, run identities and rows, without YAML."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from controller.base.states import FailureKind, RunType, TaskState
from controller.engine.graph import build_graph
from controller.engine.planner import RunPlanner
from controller.engine.records import Plan, RunIdentity, TaskInstanceView
from controller.spec.model import (
    JSON,
    Dag,
    ResultFormat,
    RetryBackoff,
    RetryPolicy,
    Task,
    TriggerRule,
)

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def task(
    name: str,
    *deps: str,
    rule: TriggerRule = TriggerRule.ALL_SUCCESS,
    items: Sequence[JSON] | None = None,
    retries: int = 0,
    backoff: RetryBackoff | None = None,
    command: Sequence[str] = (),
    env: Sequence[dict[str, JSON]] = (),
    result_format: ResultFormat = ResultFormat.TEXT,
    items_from: str | None = None,
) -> Task:
    return Task(
        name=name,
        image="busybox",
        command=tuple(command),
        env=tuple(env),
        depends_on=deps,
        trigger_rule=rule,
        retries=RetryPolicy(limit=retries, backoff=backoff or RetryBackoff()),
        with_items=None if items is None else tuple(items),
        result_format=result_format,
        items_from=items_from,
    )


def dag(*tasks: Task, name: str = "sales") -> Dag:
    return Dag(name=name, tasks=tasks)


def identity(*, params: dict[str, JSON] | None = None) -> RunIdentity:
    return RunIdentity(
        run_id=42,
        dag_name="sales",
        logical_date=T0,
        revision="0123abcd",
        run_type=RunType.SCHEDULED,
        params=params or {},
    )


def row(
    name: str,
    state: TaskState,
    *,
    item: int = 0,
    try_number: int = 1,
    kind: FailureKind | None = None,
    result: str | None = None,
    finished_at: datetime | None = None,
    value: JSON = None,
) -> TaskInstanceView:
    if state is TaskState.FAILED and kind is None:
        kind = FailureKind.TASK
    if state.finished and finished_at is None:
        finished_at = T0
    return TaskInstanceView(
        task=name,
        item_index=item,
        try_number=try_number,
        state=state,
        failure_kind=kind,
        result=result,
        finished_at=finished_at,
        item=value,
    )


def start(
    the_dag: Dag,
    rows: Sequence[TaskInstanceView] = (),
    *,
    params: dict[str, JSON] | None = None,
    max_infra_retries: int = 3,
) -> tuple[RunPlanner, Plan]:
    return RunPlanner.recover(
        build_graph(the_dag),
        identity(params=params),
        rows,
        now=T0,
        max_infra_retries=max_infra_retries,
    )


def created(plan: Plan) -> set[tuple[str, int, int]]:
    return {(new.task, new.item_index, new.try_number) for new in plan.create}


def finished(plan: Plan) -> dict[tuple[str, int], TaskState]:
    return {(f.task, f.item_index): f.state for f in plan.finish}
