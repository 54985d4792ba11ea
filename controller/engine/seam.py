"""The seam between the engine and an executor.

The engine decides *what* runs; an executor decides *how* (Kubernetes pods, or the
in-process executor the engine's own tests use). Everything that crosses the seam is a
plain value, and results flow back through one door, `UpdateSink.apply`, which commits
a batch of task transitions together with the executor's watch cursor in a single
transaction. That is the invariant the whole crash story rests on: a restarted
controller resumes its watch from a cursor that never runs ahead of, or behind, the
states it produced.

Ownership of state changes, so that no two parts race on a row:
- PENDING -> LAUNCHED: the engine, by compare-and-set, *before* `Executor.launch`, with
  the try's deterministic pod name recorded in the same write. A crash after that write
  and before the pod exists is repaired by relaunching the same name (the API answers
  AlreadyExists if it was created after all), never by a second name.
- LAUNCHED/RUNNING -> RUNNING/SUCCEEDED/FAILED: the executor, through `UpdateSink.apply`.
  A transition that is not allowed from the row's current state (a late or repeated
  watch event, another controller got there first) is dropped, so each event yields at
  most one transition.
- Everything else (new tries, skips, run states): the engine, from planner decisions,
  and from operators' requests (cancel, retry, mark), which it applies in its own loop.
  An operator ends a try by writing its finished state first and then asking the
  executor to `cancel` its pod, so whatever the pod reports afterwards is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from controller.base.states import FailureKind, TaskState
from controller.base.tries import TryKey
from controller.engine.rendering import RenderedTask
from controller.spec.model import Task


@dataclass(frozen=True)
class LaunchOrder:
    """Launch one try of one task instance, already marked LAUNCHED in the store."""

    task_instance_id: int
    key: TryKey
    dag_name: str
    dag_path: str | None
    """The DAG file's path inside the repository (for the task's default working dir)."""
    revision: str
    """The commit the run is pinned to; the worker checks out exactly this."""
    task: Task
    """The task as the run's DAG defines it (`key.task` is its name)."""
    rendered: RenderedTask
    pod_name: str
    relaunch: bool = False
    """True when the try was already LAUNCHED before this engine started (a restart, or
    recovery after an error): the pod may exist already, and must then be adopted, not
    created again. The engine never hands out a second pod name for a try."""


@dataclass(frozen=True)
class TaskUpdate:
    """What an executor observed about one try.

    `state` is RUNNING, SUCCEEDED or FAILED. A FAILED update carries its failure kind:
    TASK when the task's own code failed (uses the task's retries), INFRA when the task
    never started (retried without using one).
    """

    task_instance_id: int
    state: TaskState
    failure_kind: FailureKind | None = None
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    result: str | None = None
    node: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class PodStop:
    """Stop the pod of a try an operator ended (cancelled or marked): its row is finished.

    The pod is deleted with `grace_seconds` (None: the pod's own grace period) and its
    logs are stored before it goes, as for any finished pod.
    """

    task_instance_id: int
    pod_name: str
    namespace: str | None
    grace_seconds: int | None = None


@dataclass(frozen=True)
class CursorUpdate:
    """The watch position to commit with a batch of updates."""

    namespace: str
    resource_version: str


class UpdateSink(Protocol):
    def apply(
        self, updates: Sequence[TaskUpdate], *, cursor: CursorUpdate | None = None
    ) -> list[int]:
        """Commit `updates` and `cursor` in one transaction; return the ids that changed.

        An update not allowed from the row's current state is dropped, not an error.
        """
        ...

    def relaunch_orders(self, task_instance_ids: Sequence[int]) -> list[LaunchOrder]:
        """The orders of those tries that are still LAUNCHED, to create their missing pods.

        Built as the engine built them first (same pod name, same rendering), by the one
        builder of launch orders, so an executor never renders a try itself.
        """
        ...


class Executor(Protocol):
    relaunches_itself: bool
    """True for an executor that finds for itself, when it starts, which LAUNCHED tries
    lack a pod (the Kubernetes executor lists them) and relaunches only those: the
    engine then builds no relaunch orders when it starts (rendering one per live try
    was most of a restart's work beside thousands of live pods)."""

    def start(self, sink: UpdateSink) -> None:
        """Begin reporting results to `sink` (for Kubernetes: start the watches)."""
        ...

    def launch(self, orders: Sequence[LaunchOrder]) -> None:
        """Start these tries; returns at once, outcomes arrive through the sink.

        Idempotent by pod name: the engine hands every LAUNCHED try out again when it
        starts (`LaunchOrder.relaunch`; not to an executor that `relaunches_itself`) and
        after it recovered from an error, and a pod that
        exists must be adopted. An
        executor that finds out for itself which LAUNCHED tries lack a pod (the
        Kubernetes executor lists them) may relaunch those instead.
        """
        ...

    def cancel(self, stops: Sequence[PodStop]) -> None:
        """Stop these pods; returns at once. Stopping a pod that is gone is not an error."""
        ...

    def stop(self) -> None:
        """Stop launching and reporting; running work is left alone (adopted on restart)."""
        ...
