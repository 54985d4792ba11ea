"""The state vocabulary of DagRuns and TaskInstances, shared by store, planner and executor.

A TaskInstance row is one *try* of one (task, item): a retry is a new row with the next
try number, and so a new pod name. That keeps "a pod name is created at most once" true
by construction: no row is ever relaunched.
"""

from __future__ import annotations

import enum


class DagRunState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped by an operator: its pods deleted, nothing more launched

    @property
    def finished(self) -> bool:
        return self in (DagRunState.SUCCEEDED, DagRunState.FAILED, DagRunState.CANCELLED)


class RunType(enum.StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    BACKFILL = "backfill"


class TaskState(enum.StrEnum):
    PENDING = "pending"  # ready (or waiting for its retry time); no pod yet
    LAUNCHED = "launched"  # pod create sent or acknowledged; not yet seen running
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # its trigger rule can no longer be met, without an upstream failure
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"  # stopped by an operator; counts as a failure, never retried
    CLEARED = "cleared"  # an operator's retry: no pod; the planner decides the next try afresh

    @property
    def finished(self) -> bool:
        return self in FINISHED_TASK_STATES

    @property
    def active(self) -> bool:
        """Counts against maxActiveTasks and the global parallelism cap."""
        return self in (TaskState.LAUNCHED, TaskState.RUNNING)


FINISHED_TASK_STATES = frozenset(
    {
        TaskState.SUCCEEDED,
        TaskState.FAILED,
        TaskState.SKIPPED,
        TaskState.UPSTREAM_FAILED,
        TaskState.CANCELLED,
    }
)


class FailureKind(enum.StrEnum):
    """Why a try failed, because the two are retried differently.

    TASK: the main container ran and failed, or its deadline passed; uses the task's retries.
    INFRA: the task never started (image pull, config error, unschedulable, pod deleted or
    node lost before start); retried with a fresh pod without using a task retry, up to a
    bound of its own.
    EXPANSION: no pod was made: see the member.
    """

    TASK = "task"
    INFRA = "infra"
    EXPANSION = "expansion"
    """A dynamic withItems whose upstream result is not a usable array; never retried."""
