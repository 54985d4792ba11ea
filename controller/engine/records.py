"""The values that cross the planner's boundary: what the engine hands in, what comes out.

They are plain frozen dataclasses so the planner stays free of the store and of
Kubernetes: the engine turns TaskInstance rows into `TaskInstanceView`s, calls the
planner, and writes the `Plan` back. Keeping these apart from the planner's working
state means the engine never depends on how the planner indexes a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from controller.base.states import DagRunState, FailureKind, RunType, TaskState
from controller.spec.model import JSON


@dataclass(frozen=True, slots=True)
class InstanceKey:
    """One task instance: a task, and its item for withItems (0 without withItems)."""

    task: str
    item_index: int


@dataclass(frozen=True, slots=True)
class TaskInstanceView:
    """One TaskInstance row (one try), as far as planning needs it.

    `result` is the raw termination message of a succeeded try; the planner parses it
    according to the task's result format. The planner does not read `not_before`; it is
    here so that pending rows can go to `admission.admit` as they are.
    """

    task: str
    item_index: int
    try_number: int
    state: TaskState
    failure_kind: FailureKind | None = None
    result: str | None = None
    finished_at: datetime | None = None
    not_before: datetime | None = None
    marked: bool = False
    """An operator set this try's state: a FAILED one is final, never retried."""
    item: JSON = None
    """The instance's item: what a recovered dynamic fan-out reads its expansion from."""


@dataclass(frozen=True)
class RunIdentity:
    """Who a run is: the values `{{ run.* }}` and `{{ params.* }}` render to."""

    run_id: int
    dag_name: str
    logical_date: datetime
    revision: str
    run_type: RunType
    params: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewTry:
    """Insert a PENDING TaskInstance row for this try; launch it no earlier than not_before."""

    task: str
    item_index: int
    try_number: int
    item: JSON
    not_before: datetime | None

    @property
    def key(self) -> InstanceKey:
        return InstanceKey(self.task, self.item_index)


@dataclass(frozen=True, slots=True)
class FinishedInstance:
    """Record this instance, which has no try to run, as `try_number` in `state` (no pod).

    `state` is SKIPPED or UPSTREAM_FAILED, or FAILED (kind EXPANSION) for a dynamic
    fan-out whose upstream result is unusable; `message` says why. `try_number` is 1
    unless an operator cleared earlier tries.
    """

    task: str
    item_index: int
    state: TaskState
    try_number: int = 1
    failure_kind: FailureKind | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class RejectedResult:
    """A try reported SUCCEEDED but its result is unusable: record it FAILED (kind TASK).

    The planner already counts the try as a task failure (a retry, if any, is in the same
    Plan's `create`), so the engine must write this state in the same transaction.
    """

    task: str
    item_index: int
    try_number: int
    message: str


@dataclass(frozen=True, slots=True)
class InstanceOutcome:
    """Where one instance stands: its latest try and that try's state (None: no try yet)."""

    task: str
    item_index: int
    try_number: int
    state: TaskState | None


@dataclass(frozen=True, slots=True)
class Instances:
    """Some instances of a run, the first `LISTED` of them by name, and how many in all."""

    listed: tuple[InstanceOutcome, ...]
    total: int

    LISTED = 10


@dataclass(frozen=True, slots=True)
class RunFailing:
    """News: an instance failed for good, so the run will end failed, but others are
    unfinished (running, waiting for a retry, or not decided yet), and the run waits for
    them: nothing is cancelled on the run's behalf. Told once per run."""

    failed: Instances
    unfinished: Instances


@dataclass
class Plan:
    """What the engine does next for one run; applying it twice must be harmless."""

    create: list[NewTry] = field(default_factory=list)
    finish: list[FinishedInstance] = field(default_factory=list)
    reject: list[RejectedResult] = field(default_factory=list)
    run_state: DagRunState | None = None
    """SUCCEEDED or FAILED once every instance is finished; None while the run goes on."""
    exhausted: list[InstanceKey] = field(default_factory=list)
    """Instances whose try just failed with no retry left (news, not a decision to write)."""
    failing: RunFailing | None = None
    """The run's failure just became certain while instances are unfinished (news)."""
    failed: Instances | None = None
    """With run_state FAILED: the instances that made it fail."""

    @property
    def news(self) -> bool:
        """Something to write: decisions, or news that only becomes events."""
        return bool(self.decisions or self.exhausted or self.failing)

    @property
    def decisions(self) -> int:
        return (
            len(self.create)
            + len(self.finish)
            + len(self.reject)
            + (0 if self.run_state is None else 1)
        )
