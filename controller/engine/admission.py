"""Which pending tries may launch now, and which queued runs may start.

Caps are applied here, not in the planner, because the global parallelism cap is
shared across runs and DAGs: the planner of one run cannot see it. The caller owns the
counts (tries active in the run, free global slots) and the order (oldest run first),
so these stay pure and O(len(pending)).

A try waiting for its retry time must not hold back the tries behind it, so undue tries
are passed over rather than blocking the queue; `next_due` tells the caller when to
look again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar


class Launchable(Protocol):
    @property
    def not_before(self) -> datetime | None: ...


class Startable(Protocol):
    @property
    def logical_date(self) -> datetime: ...

    @property
    def max_active_runs(self) -> int | None:
        """A cap of the run's own (a backfill's), beside the DAG's; None for none."""
        ...


TryT = TypeVar("TryT", bound=Launchable)
RunT = TypeVar("RunT", bound=Startable)


@dataclass(frozen=True)
class Admission(Generic[TryT]):
    launch: list[TryT]
    """The tries to launch now, in the caller's order."""
    next_due: datetime | None
    """The earliest retry time among the tries not yet due (None if there is none)."""


def admit(
    pending: Sequence[TryT],
    *,
    now: datetime,
    max_active_tasks: int,
    active_tasks: int,
    free_slots: int,
) -> Admission[TryT]:
    """Pick the due tries of one DagRun within maxActiveTasks and the global free slots.

    `active_tasks` counts the run's tries that are launched or running; `free_slots` is
    the global parallelism cap minus every active try. When several runs share the
    slots, call this per run and lower `free_slots` by what it launched.
    """
    room = max(0, min(max_active_tasks - active_tasks, free_slots))
    launch: list[TryT] = []
    next_due: datetime | None = None
    for candidate in pending:
        not_before = candidate.not_before
        if not_before is not None and not_before > now:
            if next_due is None or not_before < next_due:
                next_due = not_before
            continue
        if len(launch) < room:
            launch.append(candidate)
    return Admission(launch=launch, next_due=next_due)


def runs_to_start(queued: Sequence[RunT], *, running: int, max_active_runs: int) -> list[RunT]:
    """The queued runs of one DAG that may start now, oldest logical date first.

    A run with a cap of its own starts only while fewer than that many of the DAG's runs
    run; it does not hold back a newer run without one.
    """
    started: list[RunT] = []
    for run in sorted(queued, key=lambda run: run.logical_date):
        cap = max_active_runs
        if run.max_active_runs is not None:
            cap = min(cap, run.max_active_runs)
        if running + len(started) < cap:
            started.append(run)
    return started
