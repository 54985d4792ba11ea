"""The plan: what replacing one validated DAG set by another does, DAG by DAG.

Pure: the two sides come in validated (`DagSet`, built from the same `validate_paths`
report the controller's git-sync builds), the clock comes in as `now`, and what only
the database knows (latest scheduled runs, runs still in flight) comes in as an
optional `History`. Nothing is read or written here.

A DAG is identified by its name, as the controller identifies it: the same name in
another file is a rename (its runs and history carry over), a new name is an added
DAG even when the file is the same. A DAG whose new version is invalid is not removed:
the controller keeps running its last valid version, and the plan says so.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from controller.executor.podspec import PodConfig
from controller.plan.pods import changed_fields, task_pod, unified_diff
from controller.plan.schedules import CatchupRuns, ScheduleChange, catchup_runs, schedule_change
from controller.spec.model import JSON, Dag, Task, dag_to_dict, task_to_dict
from controller.spec.problems import Problem
from controller.spec.validate import LoadedDag, ValidationReport

_TIMING_FIELDS = {"schedule", "timezone", "startDate", "endDate", "paused", "tasks", "name"}
_TASK_SETTINGS = ("dependsOn", "triggerRule", "withItems", "itemsFrom", "retries", "resultFormat")


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    RENAMED = "renamed"
    """Same DAG name, another file (possibly with other changes as well)."""
    CHANGED = "changed"
    INVALID = "invalid-now"
    """Invalid in HEAD; the controller keeps running the base version, if there is one."""


@dataclass(frozen=True)
class DagSet:
    """One side of a plan: the valid DAGs of a tree, the problems of the others."""

    dags: Mapping[str, LoadedDag]
    """By DAG name."""
    problems: tuple[Problem, ...]
    names_by_path: Mapping[str, str]
    pod_config: PodConfig
    """The operator's pod settings on this side (its pod template may differ)."""

    @classmethod
    def of(cls, report: ValidationReport, *, pod_config: PodConfig) -> DagSet:
        return cls(
            dags={loaded.dag.name: loaded for loaded in report.dags},
            problems=report.problems,
            names_by_path=dict(report.names_by_path),
            pod_config=pod_config,
        )

    def invalid_paths(self) -> set[str]:
        return {problem.path for problem in self.problems}


@dataclass(frozen=True)
class OpenRun:
    """A run not finished yet: it keeps the commit it was created from, whatever merges."""

    run_id: int
    revision: str
    state: str
    logical_date: datetime


@dataclass(frozen=True)
class History:
    """What the database knows: each DAG's latest scheduled run and its open runs."""

    last_runs: Mapping[str, datetime | None]
    open_runs: Mapping[str, tuple[OpenRun, ...]]


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: JSON
    after: JSON


@dataclass(frozen=True)
class TaskChange:
    name: str
    kind: ChangeKind
    """ADDED, REMOVED or CHANGED."""
    settings: tuple[FieldChange, ...] = ()
    """dependsOn, triggerRule, withItems, retries, resultFormat."""
    pod_fields: tuple[str, ...] = ()
    """Where the task's worker pod differs (dotted paths)."""
    pod_diff: str = ""


@dataclass(frozen=True)
class DagPlan:
    name: str
    kind: ChangeKind
    path: str | None
    """The file in HEAD (None when removed)."""
    old_path: str | None = None
    """The file in BASE (None when added)."""
    schedule: ScheduleChange | None = None
    paused: tuple[bool, bool] | None = None
    catchup: CatchupRuns | None = None
    fields: tuple[FieldChange, ...] = ()
    tasks: tuple[TaskChange, ...] = ()
    problems: tuple[Problem, ...] = ()
    open_runs: tuple[OpenRun, ...] | None = None
    """Runs that keep the base commit; None when the database was not read."""


@dataclass(frozen=True)
class Plan:
    base: str
    head: str
    now: datetime
    dags: tuple[DagPlan, ...]
    problems: tuple[Problem, ...] = field(default=())
    """Every problem of HEAD, whichever DAG it belongs to."""

    @property
    def exit_code(self) -> int:
        """0 nothing changes, 1 HEAD is invalid, 2 HEAD is valid and changes something."""
        if self.problems:
            return 1
        return 2 if self.dags else 0


def compute_plan(
    base: DagSet,
    head: DagSet,
    *,
    now: datetime,
    history: History | None = None,
    base_label: str = "BASE",
    head_label: str = "HEAD",
) -> Plan:
    invalid = _invalid_in_head(base, head)
    plans: list[DagPlan] = []
    for name in sorted(set(base.dags) | set(head.dags) | set(invalid)):
        old, new = base.dags.get(name), head.dags.get(name)
        if name in invalid:
            plans.append(_invalid(name, old, invalid[name], history=history))
        elif new is None and old is not None:
            plans.append(_removed(old, history=history))
        elif old is None and new is not None:
            plans.append(_added(new, pod_config=head.pod_config, now=now, history=history))
        elif old is not None and new is not None:
            changed = _changed(old, new, base=base, head=head, now=now, history=history)
            if changed is not None:
                plans.append(changed)
    return Plan(
        base=base_label, head=head_label, now=now, dags=tuple(plans), problems=head.problems
    )


def _invalid_in_head(base: DagSet, head: DagSet) -> dict[str, tuple[str, list[Problem]]]:
    """DAG names whose HEAD file is invalid (newly, or a new file): their path and problems.

    A file invalid in both sides changes nothing the controller does; its problems are
    still in the plan's problems.
    """
    by_path: dict[str, list[Problem]] = {}
    for problem in head.problems:
        by_path.setdefault(problem.path, []).append(problem)
    base_names = {loaded.path: name for name, loaded in base.dags.items()}
    base_invalid = base.invalid_paths()
    found: dict[str, tuple[str, list[Problem]]] = {}
    for path, problems in by_path.items():
        name = head.names_by_path.get(path) or base_names.get(path)
        if name is None or name in head.dags:
            continue  # unreadable name or a duplicate of a valid DAG: plan-wide problems
        if name in base.dags or path not in base_invalid:
            found.setdefault(name, (path, []))[1].extend(problems)
    return found


def _open_runs(name: str, history: History | None) -> tuple[OpenRun, ...] | None:
    return None if history is None else history.open_runs.get(name, ())


def _invalid(
    name: str,
    old: LoadedDag | None,
    where: tuple[str, list[Problem]],
    *,
    history: History | None,
) -> DagPlan:
    path, problems = where
    return DagPlan(
        name=name,
        kind=ChangeKind.INVALID,
        path=path,
        old_path=None if old is None else old.path,
        problems=tuple(sorted(problems)),
        open_runs=None if old is None else _open_runs(name, history),
    )


def _removed(old: LoadedDag, *, history: History | None) -> DagPlan:
    return DagPlan(
        name=old.dag.name,
        kind=ChangeKind.REMOVED,
        path=None,
        old_path=old.path,
        tasks=tuple(TaskChange(task.name, ChangeKind.REMOVED) for task in old.dag.tasks),
        open_runs=_open_runs(old.dag.name, history),
    )


def _added(
    new: LoadedDag, *, pod_config: PodConfig, now: datetime, history: History | None
) -> DagPlan:
    dag = new.dag
    return DagPlan(
        name=dag.name,
        kind=ChangeKind.ADDED,
        path=new.path,
        schedule=schedule_change(None, dag, now=now),
        catchup=catchup_runs(None, dag, now=now, last_runs=_last_runs(history)),
        tasks=tuple(TaskChange(task.name, ChangeKind.ADDED) for task in dag.tasks),
    )


def _last_runs(history: History | None) -> Mapping[str, datetime | None] | None:
    return None if history is None else history.last_runs


def _changed(
    old: LoadedDag,
    new: LoadedDag,
    *,
    base: DagSet,
    head: DagSet,
    now: datetime,
    history: History | None,
) -> DagPlan | None:
    tasks = tuple(_task_changes(old, new, base=base.pod_config, head=head.pod_config))
    if old.content_hash == new.content_hash and old.path == new.path and not tasks:
        return None
    before, after = old.dag, new.dag
    paused = None if before.paused == after.paused else (before.paused, after.paused)
    return DagPlan(
        name=after.name,
        kind=ChangeKind.RENAMED if old.path != new.path else ChangeKind.CHANGED,
        path=new.path,
        old_path=old.path,
        schedule=schedule_change(before, after, now=now),
        paused=paused,
        catchup=catchup_runs(before, after, now=now, last_runs=_last_runs(history)),
        fields=tuple(_field_changes(dag_to_dict(before), dag_to_dict(after), skip=_TIMING_FIELDS)),
        tasks=tasks,
        open_runs=_open_runs(after.name, history),
    )


def _field_changes(
    before: Mapping[str, JSON], after: Mapping[str, JSON], *, skip: Iterable[str] = ()
) -> Iterable[FieldChange]:
    skipped = set(skip)
    for key in sorted(set(before) | set(after)):
        if key not in skipped and before.get(key) != after.get(key):
            yield FieldChange(key, before.get(key), after.get(key))


def _task_changes(
    old: LoadedDag, new: LoadedDag, *, base: PodConfig, head: PodConfig
) -> Iterable[TaskChange]:
    before = {task.name: task for task in old.dag.tasks}
    after = {task.name: task for task in new.dag.tasks}
    for name in sorted(set(before) | set(after)):
        if name not in after:
            yield TaskChange(name, ChangeKind.REMOVED)
        elif name not in before:
            yield TaskChange(name, ChangeKind.ADDED)
        else:
            change = _task_change(
                (old.dag, before[name], old.path, base), (new.dag, after[name], new.path, head)
            )
            if change is not None:
                yield change


def _task_change(
    before: tuple[Dag, Task, str, PodConfig], after: tuple[Dag, Task, str, PodConfig]
) -> TaskChange | None:
    old_dag, old_task, old_path, old_config = before
    new_dag, new_task, new_path, new_config = after
    settings = tuple(
        change
        for change in _field_changes(_settings(old_task), _settings(new_task))
        if change.field in _TASK_SETTINGS
    )
    old_pod = task_pod(old_dag, old_task, dag_path=old_path, config=old_config)
    new_pod = task_pod(new_dag, new_task, dag_path=new_path, config=new_config)
    if not settings and old_pod == new_pod:
        return None
    return TaskChange(
        name=new_task.name,
        kind=ChangeKind.CHANGED,
        settings=settings,
        pod_fields=tuple(changed_fields(old_pod, new_pod)),
        pod_diff=unified_diff(old_pod, new_pod, label=f"{new_dag.name}/{new_task.name}"),
    )


def _settings(task: Task) -> dict[str, JSON]:
    data = task_to_dict(task)
    data["dependsOn"] = sorted(data["dependsOn"])
    return data
