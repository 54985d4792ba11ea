"""What the store hands out and takes in: frozen dataclasses, not ORM objects.

A caller holding an ORM object holds a session: touching an expired attribute after
commit lazy-loads behind its back, in whatever transaction (or thread) it happens to be
in. Records are plain values read inside the transaction, safe to pass between threads
and to the pure planner. All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.base.states import DagRunState, FailureKind, RunType, TaskState
from controller.base.tries import TryKey


@dataclass(frozen=True)
class DagRecord:
    name: str
    path: str
    revision: str
    """The newest commit at which the DAG file was read, valid or not."""
    spec_revision: str | None
    """The commit of the last valid version: new runs are pinned to it."""
    spec_hash: str | None
    spec: dict[str, Any] | None
    """`dag_to_dict` of the last valid version; None until a version was valid."""
    valid: bool
    error: str | None
    """The problems of the newest version, when it is invalid."""
    paused: bool
    deleted: bool
    updated_at: datetime
    spec_paused: bool = False
    """`spec.paused` of the newest valid version; an operator's pause lasts until it changes."""
    paused_by: str | None = None
    """Who paused the DAG: "git", or the operator who ran `kubedag pause`."""

    @property
    def schedulable(self) -> bool:
        """Has a valid version to run, and is neither paused nor removed from the repo."""
        return self.spec is not None and not self.paused and not self.deleted


@dataclass(frozen=True)
class DagRunRecord:
    id: int
    dag_name: str
    logical_date: datetime
    run_type: RunType
    revision: str
    spec: dict[str, Any]
    params: dict[str, Any]
    state: DagRunState
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    max_active_runs: int | None = None
    """A backfill's own cap on its runs running at once (beside the DAG's)."""


@dataclass(frozen=True)
class NewTaskInstance:
    """A task instance to create; `add_task_instances` ignores ones that already exist."""

    run_id: int
    task_name: str
    item_index: int = 0
    item: Any = None
    try_number: int = 1
    state: TaskState = TaskState.PENDING
    not_before: datetime | None = None
    finished_at: datetime | None = None
    """Set for an instance recorded already finished (skipped, upstream_failed)."""
    pod_name: str | None = None
    namespace: str | None = None
    set_by: str | None = None
    """The operator who set this try's state (a mark, a clear)."""
    failure_kind: FailureKind | None = None
    """With `message`: why an instance recorded FAILED without a pod failed."""
    reason: str | None = None
    message: str | None = None
    result: str | None = None


@dataclass(frozen=True)
class TaskInstanceRecord:
    id: int
    run_id: int
    dag_name: str
    task_name: str
    item_index: int
    item: Any
    try_number: int
    state: TaskState
    failure_kind: FailureKind | None
    pod_name: str | None
    namespace: str | None
    node: str | None
    exit_code: int | None
    reason: str | None
    message: str | None
    result: str | None
    not_before: datetime | None
    created_at: datetime
    launched_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    set_by: str | None = None
    """The operator who set this try's state by hand; None when it ran its course."""

    @property
    def key(self) -> TryKey:
        """Which try this row is: what its pod is named after and its logs stored under."""
        return TryKey(self.run_id, self.task_name, self.item_index, self.try_number)


@dataclass(frozen=True)
class EventRecord:
    id: int
    at: datetime
    kind: str
    message: str
    dag_name: str | None
    run_id: int | None
    task_name: str | None
    item_index: int | None
    try_number: int | None
    data: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class NewEvent:
    """An event to append; the store gives it its id."""

    at: datetime
    kind: str
    message: str
    dag_name: str | None = None
    run_id: int | None = None
    task_name: str | None = None
    item_index: int | None = None
    try_number: int | None = None


@dataclass(frozen=True)
class ActionRequestRecord:
    """An operator's request and, once the engine handled it, its outcome."""

    id: int
    kind: str
    dag_name: str | None
    run_id: int | None
    task_name: str | None
    item_index: int | None
    options: dict[str, Any]
    requested_by: str
    requested_at: datetime
    state: str
    """pending, done or rejected"""
    handled_at: datetime | None
    outcome: str | None
