"""`kubedag validate`, `kubedag schema` and `kubedag show`: the DAG language at the terminal.

These commands are what a DAG author runs before pushing (and what the pre-commit
hook runs for them), so they answer in the editor-friendly `path:line:col: message`
form, or as JSON records for tools, and exit 1 when anything is wrong: a hook or a CI
job needs nothing more than the exit code.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from controller.settings.loading import load_config
from controller.settings.model import ConfigError, pod_policy
from controller.spec.model import Task, dag_to_dict
from controller.spec.schedule import next_fire_times, to_crontab
from controller.spec.schema import schema_text
from controller.spec.validate import LoadedDag, ValidationReport, validate_paths

SHOWN_FIRE_TIMES = 5


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a whole repository is validated.

    Composing allocates tens of thousands of short-lived, acyclic objects (nodes and
    marks, freed by reference counting) whose allocation bursts would otherwise set off
    collections that traverse the valid DAGs kept so far, again and again: about a fifth
    of the validation time. The collector is process-wide, so only a process that does
    nothing else may pause it: this command, never the controller, whose other threads
    would lose their collections meanwhile. Only the collector's timing changes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _PlainDumper(yaml.SafeDumper):
    """Writes shared values out in full: `&id001` anchors would puzzle a reader."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def register(subparsers: Any) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="check DAG files against the schema and the language's rules",
        description="Check DAG files (YAML files declaring `kind: DAG`) and report every "
        "problem as path:line:col: message. Exit status 1 when there are problems.",
    )
    validate.add_argument(
        "paths",
        nargs="*",
        default=["."],
        metavar="PATH",
        help="files or directories (searched recursively for *.yaml and *.yml); default: .",
    )
    validate.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    validate.add_argument(
        "--config",
        metavar="FILE",
        help="also apply the pod policy of this controller config file (the Secrets DAGs "
        "may read, the controller's ServiceAccount), as the controller does",
    )
    validate.set_defaults(handler=run_validate)

    schema = subparsers.add_parser(
        "schema",
        help="print the DAG JSON Schema",
        description="Print the JSON Schema of DAG files, for editors and other tools.",
    )
    schema.set_defaults(handler=run_schema)

    show = subparsers.add_parser(
        "show",
        help="print a DAG as kubedag reads it",
        description="Print the resolved DAG (defaults merged into each task), its fan-out "
        "and its next scheduled times in its time zone.",
    )
    show.add_argument("dag_file", metavar="DAG_FILE", help="the DAG file to show")
    show.set_defaults(handler=run_show)


def _summary(report: ValidationReport) -> str:
    return f"{len(report.dags)} DAGs, {report.task_count} tasks checked"


def run_validate(args: argparse.Namespace) -> int:
    policy = None
    if args.config is not None:
        try:
            policy = pod_policy(load_config(path=args.config, environ={}))
        except ConfigError as error:
            print(f"kubedag validate: {error}", file=sys.stderr)
            return 2
    with collector_paused():
        report = validate_paths(args.paths, policy=policy)
    if args.format == "json":
        document = {
            "ok": report.ok,
            "filesChecked": report.files_checked,
            "dags": len(report.dags),
            "tasks": report.task_count,
            "problems": [problem.to_json() for problem in report.problems],
        }
        print(json.dumps(document, indent=2))
        return 0 if report.ok else 1
    for problem in report.problems:
        print(problem)
    if report.ok:
        print(_summary(report))
        return 0
    files = len({problem.path for problem in report.problems})
    print(
        f"{len(report.problems)} problem{'s' * (len(report.problems) != 1)} in {files} "
        f"file{'s' * (files != 1)}; {_summary(report)}",
        file=sys.stderr,
    )
    return 1


def run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0


def _fan_out(task: Task) -> list[Any]:
    if task.items_from is not None:
        return [f"(one instance per element of tasks.{task.items_from}.result)"]
    return ["(one instance)"] if task.with_items is None else list(task.with_items)


def _shown(loaded: LoadedDag, now: datetime) -> dict[str, Any]:
    dag = loaded.dag
    shown: dict[str, Any] = {"file": loaded.path, "contentHash": loaded.content_hash}
    shown.update(dag_to_dict(dag))
    if dag.schedule is not None:
        shown["crontab"] = to_crontab(dag.schedule)
    shown["fanOut"] = {task.name: _fan_out(task) for task in dag.tasks}
    fire_times = next_fire_times(dag, after=now, count=SHOWN_FIRE_TIMES)
    shown["nextRuns"] = (
        [moment.isoformat() for moment in fire_times]
        if dag.schedule is not None
        else "manual: runs only when triggered"
    )
    return shown


def run_show(args: argparse.Namespace) -> int:
    path = Path(args.dag_file)
    if not path.is_file():
        print(f"kubedag show: {path}: no such file", file=sys.stderr)
        return 2
    report = validate_paths([path])
    for problem in report.problems:
        print(problem)
    if not report.ok:
        return 1
    if not report.dags:
        print(
            f"kubedag show: {path}: not a DAG file (it does not declare kind: DAG)", file=sys.stderr
        )
        return 1
    shown = _shown(report.dags[0], datetime.now(UTC))
    sys.stdout.write(
        yaml.dump(shown, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100)
    )
    return 0
