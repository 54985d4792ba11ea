"""When a DAG fires before and after a change, and which runs the merge creates at once.

Both answers come from the scheduler's own code (`next_fire_times`, `due_runs`), so the
plan shows what the controller will do, DST days included, not a second reading of cron.

Which runs a merge creates depends on the DAG's latest scheduled run, which lives in the
database. When the caller has it (`last_runs`), it is used; otherwise the plan assumes
the controller kept up with the base version (its latest fire time before now was run),
which is exact for an active DAG. For a DAG paused in the base that the change unpauses
with catchup, that assumption would be a guess, so the count is reported as unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from controller.runtime.cron import due_runs
from controller.spec.model import Dag
from controller.spec.schedule import load_timezone, next_fire_times

FIRE_TIMES = 5
MAX_CATCHUP_SHOWN = 1000
"""Runs counted at most; more is reported as "at least" this many."""


@dataclass(frozen=True)
class ScheduleChange:
    before: str | None
    """`schedule (timezone)`, or None for a manual DAG or one that did not exist."""
    after: str | None
    fires_before: tuple[datetime, ...]
    """The next fire times of the base version, in its time zone."""
    fires_after: tuple[datetime, ...]


@dataclass(frozen=True)
class CatchupRuns:
    """The scheduled runs the controller creates as soon as it syncs the change."""

    logical_dates: tuple[datetime, ...]
    """In the DAG's time zone, oldest first; empty when `known` is False."""
    known: bool = True
    truncated: bool = False
    """More than MAX_CATCHUP_SHOWN runs: `logical_dates` holds the first of them."""
    assumed_last_run: bool = False
    """The DAG's latest run was assumed (the base version kept up), not read."""


def _describe(dag: Dag | None) -> str | None:
    if dag is None or dag.schedule is None:
        return None
    return f"{dag.schedule} ({dag.timezone})"


def _timing(dag: Dag | None) -> tuple[object, ...]:
    if dag is None:
        return ()
    return (dag.schedule, dag.timezone, dag.start_date, dag.end_date)


def schedule_change(
    before: Dag | None, after: Dag | None, *, now: datetime
) -> ScheduleChange | None:
    """The fire times before and after, when anything that moves them changed."""
    if _timing(before) == _timing(after):
        return None
    return ScheduleChange(
        before=_describe(before),
        after=_describe(after),
        fires_before=_fires(before, now=now),
        fires_after=_fires(after, now=now),
    )


def _fires(dag: Dag | None, *, now: datetime) -> tuple[datetime, ...]:
    if dag is None:
        return ()
    return tuple(next_fire_times(dag, after=now, count=FIRE_TIMES))


def _schedulable(dag: Dag | None) -> bool:
    return dag is not None and dag.schedule is not None and not dag.paused


def catchup_runs(
    before: Dag | None,
    after: Dag,
    *,
    now: datetime,
    last_runs: Mapping[str, datetime | None] | None,
) -> CatchupRuns | None:
    """The runs created at once when `after` replaces `before`; None when there are none."""
    if not _schedulable(after):
        return None
    assumed = False
    if last_runs is not None:
        last = last_runs.get(after.name)
    elif before is None or before.schedule is None:
        last = None  # never scheduled before: no scheduled run exists
    elif before.paused:
        return CatchupRuns((), known=False, assumed_last_run=True) if after.catchup else None
    else:
        kept_up = due_runs(before, last_logical_date=None, now=now, catchup=False)
        last, assumed = (kept_up[-1] if kept_up else None), True
    dates = due_runs(
        after,
        last_logical_date=last,
        now=now,
        catchup=after.catchup,
        max_catchup=MAX_CATCHUP_SHOWN + 1,
    )
    if not dates:
        return None
    zone = load_timezone(after.timezone)
    return CatchupRuns(
        logical_dates=tuple(date.astimezone(zone) for date in dates[:MAX_CATCHUP_SHOWN]),
        truncated=len(dates) > MAX_CATCHUP_SHOWN,
        assumed_last_run=assumed,
    )
