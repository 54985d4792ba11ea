"""`kubedag trigger`, `kubedag runs` and `kubedag tasks`: queue runs and read their state.

These talk to the database only, never to the cluster or the controller: a triggered
run is a QUEUED row, which the leading controller's engine picks up within its poll
interval. So the commands work from a laptop with the database URL, and the rules a run
must satisfy (declared param types, the DAG's last valid version) are checked here with
the same code the controller uses, before anything is written.

Output is a readable table by default and `--output json` for scripts; errors are one
line on stderr naming what to do (the declared type of a bad param, `kubedag db
upgrade` for an unmigrated database), with exit code 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controller.base.states import DagRunState
from controller.cli.database import (
    add_database_arguments,
    database_fail,
    fail,
    opened_store,
)
from controller.runtime.manual import TriggerError, trigger_run
from controller.settings.model import ConfigError
from controller.spec.params import ParamError
from controller.store import (
    DagRunRecord,
    NotMigratedError,
    TaskInstanceRecord,
)
from controller.store.errors import DatabaseError


class UsageError(ValueError):
    pass


def register(subparsers: Any) -> None:
    trigger = subparsers.add_parser(
        "trigger",
        help="queue a manual run of a DAG",
        description="Queue a manual run of DAG now, on its last valid version. Params are "
        "checked against the types the DAG declares; undeclared ones are refused.",
    )
    trigger.add_argument("dag", metavar="DAG", help="the DAG's metadata.name")
    trigger.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a run parameter (repeatable); arrays and objects as JSON",
    )
    _common(trigger)
    trigger.set_defaults(handler=run_trigger)

    runs = subparsers.add_parser(
        "runs",
        help="list DagRuns, newest first",
        description="List DagRuns, newest logical date first, optionally of one DAG only.",
    )
    runs.add_argument("dag", metavar="DAG", nargs="?", help="only this DAG's runs")
    runs.add_argument(
        "--state", choices=[state.value for state in DagRunState], help="only runs in this state"
    )
    runs.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20)")
    _common(runs)
    runs.set_defaults(handler=run_runs)

    tasks = subparsers.add_parser(
        "tasks",
        help="list the task instances (every try) of a run",
        description="List every try of every task instance of the run RUN_ID.",
    )
    tasks.add_argument("run_id", metavar="RUN_ID", type=int)
    _common(tasks)
    tasks.set_defaults(handler=run_tasks)


def _common(parser: argparse.ArgumentParser) -> None:
    add_database_arguments(parser)
    parser.add_argument(
        "--output", choices=("table", "json"), default="table", help="output format"
    )


def run_trigger(args: argparse.Namespace) -> int:
    try:
        params = _params(args.param)
        with opened_store(args) as store:
            run = trigger_run(store, dag_name=args.dag, params=params)
    except ParamError as error:
        return fail("trigger", "; ".join(error.problems))
    except (TriggerError, UsageError, NotMigratedError, ConfigError) as error:
        return fail("trigger", str(error))
    except DatabaseError as error:
        return database_fail("trigger", args, error)
    if args.output == "json":
        print(json.dumps(_run_json(run), indent=2))
    else:
        print(f"queued run {run.id} of {run.dag_name} at {_time(run.logical_date)}")
    return 0


def run_runs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        return fail("runs", "--limit must be at least 1")
    try:
        with opened_store(args) as store, store.transaction() as uow:
            states = None if args.state is None else [DagRunState(args.state)]
            runs = uow.list_runs(dag_name=args.dag, states=states, limit=args.limit)
    except (NotMigratedError, ConfigError) as error:
        return fail("runs", str(error))
    except DatabaseError as error:
        return database_fail("runs", args, error)
    if args.output == "json":
        print(json.dumps([_run_json(run) for run in runs], indent=2))
        return 0
    headers = ("RUN", "DAG", "LOGICAL DATE", "TYPE", "STATE", "STARTED", "FINISHED", "REVISION")
    rows = [
        (
            str(run.id),
            run.dag_name,
            _time(run.logical_date),
            run.run_type.value,
            run.state.value,
            _time(run.started_at),
            _time(run.finished_at),
            run.revision[:12],
        )
        for run in runs
    ]
    _print_table(headers, rows)
    return 0


def run_tasks(args: argparse.Namespace) -> int:
    try:
        with opened_store(args) as store, store.transaction() as uow:
            run = uow.get_run(args.run_id)
            tasks = uow.list_task_instances(args.run_id)
    except (NotMigratedError, ConfigError) as error:
        return fail("tasks", str(error))
    except DatabaseError as error:
        return database_fail("tasks", args, error)
    if run is None:
        return fail("tasks", f"no run with id {args.run_id}; `kubedag runs` lists them")
    if args.output == "json":
        print(json.dumps([_task_json(task) for task in tasks], indent=2))
        return 0
    headers = ("TASK", "ITEM", "TRY", "STATE", "POD", "STARTED", "FINISHED", "DETAIL")
    rows = [
        (
            task.task_name,
            str(task.item_index),
            str(task.try_number),
            task.state.value,
            task.pod_name or "-",
            _time(task.started_at),
            _time(task.finished_at),
            _detail(task),
        )
        for task in tasks
    ]
    print(f"run {run.id} of {run.dag_name} at {_time(run.logical_date)}: {run.state.value}")
    _print_table(headers, rows)
    return 0


def _params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r} is not KEY=VALUE")
        params[key] = value
    return params


def _detail(task: TaskInstanceRecord) -> str:
    if task.set_by is not None and task.state.value != "succeeded":
        text = task.message or f"{task.state.value} by {task.set_by}"
    elif task.state.value == "failed":
        kind = f"{task.failure_kind.value} failure" if task.failure_kind else "failure"
        text = ": ".join(part for part in (kind, task.reason, task.message) if part)
    elif task.result is not None:
        text = f"result {task.result}"
    elif task.not_before is not None and task.state.value == "pending":
        text = f"retry at {_time(task.not_before)}"
    else:
        text = ""
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _run_json(run: DagRunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "dag": run.dag_name,
        "logicalDate": _iso(run.logical_date),
        "type": run.run_type.value,
        "state": run.state.value,
        "revision": run.revision,
        "params": run.params,
        "createdAt": _iso(run.created_at),
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
    }


def _task_json(task: TaskInstanceRecord) -> dict[str, Any]:
    return {
        "id": task.id,
        "runId": task.run_id,
        "task": task.task_name,
        "itemIndex": task.item_index,
        "item": task.item,
        "try": task.try_number,
        "state": task.state.value,
        "failureKind": None if task.failure_kind is None else task.failure_kind.value,
        "pod": task.pod_name,
        "node": task.node,
        "exitCode": task.exit_code,
        "reason": task.reason,
        "message": task.message,
        "result": task.result,
        "setBy": task.set_by,
        "notBefore": _iso(task.not_before),
        "launchedAt": _iso(task.launched_at),
        "startedAt": _iso(task.started_at),
        "finishedAt": _iso(task.finished_at),
    }


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not rows:
        print("(none)")
        return
    widths = [max(len(row[column]) for row in (headers, *rows)) for column in range(len(headers))]
    for row in (headers, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
