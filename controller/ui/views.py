"""What the UI's own read endpoints answer: the runs grid, the run graph, instance pages.

The general API lists rows; these answer the three questions a page asks at scale in
one bounded query each, so a DAG with a 2,000-item fan-out and 500 runs costs a page of
runs times its task count, never a row per instance per refresh:

- the grid: a page of a DAG's runs, and for each run each task's instances counted by
  the state of their latest try;
- the graph: a run's tasks as the run's own pinned spec defines them (dependencies,
  trigger rules, fan-out), with the same counts;
- the instances: the latest try of a run's instances, a page at a time.
"""

from __future__ import annotations

from typing import Any

from controller.engine.graph import build_graph
from controller.spec.model import dag_from_dict
from controller.store import DagRunRecord, StateCounts, TaskInstanceRecord, UnitOfWork

MAX_PAGE = 500


class NotFoundError(LookupError):
    """The DAG or run asked for does not exist; the message says which."""


def _counts(counts: dict[Any, int]) -> dict[str, int]:
    return {str(state): number for state, number in counts.items()}


def grid(uow: UnitOfWork, dag_name: str, *, limit: int, before: int | None) -> dict[str, Any]:
    record = uow.get_dag(dag_name)
    if record is None:
        raise NotFoundError(f"no DAG named {dag_name!r}")
    page = uow.runs_page(dag_name, limit=min(limit, MAX_PAGE), before=before)
    counts: StateCounts = uow.task_state_counts([run.id for run in page.runs])
    # Rows follow the current version's tasks; a task only older runs had is added after.
    tasks = dag_from_dict(record.spec).tasks if record.spec else ()
    names = [task.name for task in tasks]
    fan_out = {task.name for task in tasks if task.with_items is not None}
    for run in page.runs:
        for task_name in sorted(counts[run.id]):
            if task_name not in names:
                names.append(task_name)
    return {
        "dag": dag_name,
        "tasks": [{"name": name, "fanOut": name in fan_out} for name in names],
        "runs": [run_summary(run) for run in page.runs],
        "cells": {
            str(run.id): {task: _counts(states) for task, states in counts[run.id].items()}
            for run in page.runs
        },
        "nextBefore": page.next_before,
    }


def graph(uow: UnitOfWork, run_id: int) -> dict[str, Any]:
    run = uow.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id {run_id}")
    counts = uow.task_state_counts([run_id])[run_id]
    dag = dag_from_dict(run.spec)
    return {
        "run": run_id,
        "tasks": [
            {
                "name": task.name,
                "dependsOn": list(task.depends_on),
                "triggerRule": str(task.trigger_rule),
                "fanOut": task.with_items is not None,
                "instances": task.fan_out,
                "counts": _counts(counts.get(task.name, {})),
            }
            for task in dag.tasks
        ],
    }


def instances(
    uow: UnitOfWork, run_id: int, *, task_name: str | None, limit: int, offset: int
) -> dict[str, Any]:
    run = uow.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id {run_id}")
    page = uow.latest_instances(
        run_id,
        task_name=task_name,
        limit=min(limit, MAX_PAGE),
        offset=offset,
        task_order=[task.name for task in build_graph(dag_from_dict(run.spec)).tasks],
    )
    return {"tasks": [instance_summary(row) for row in page.instances], "total": page.total}


def run_summary(run: DagRunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "dag": run.dag_name,
        "logicalDate": run.logical_date.isoformat(),
        "runType": str(run.run_type),
        "state": str(run.state),
    }


def instance_summary(row: TaskInstanceRecord) -> dict[str, Any]:
    return {
        "task": row.task_name,
        "itemIndex": row.item_index,
        "item": row.item,
        "try": row.try_number,
        "state": str(row.state),
        "failureKind": None if row.failure_kind is None else str(row.failure_kind),
        "reason": row.reason,
        "message": row.message,
        "result": row.result,
        "setBy": row.set_by,
        "notBefore": None if row.not_before is None else row.not_before.isoformat(),
        "startedAt": None if row.started_at is None else row.started_at.isoformat(),
        "finishedAt": None if row.finished_at is None else row.finished_at.isoformat(),
    }
