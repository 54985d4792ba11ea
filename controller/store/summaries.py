"""Runs and task instances summed up for reading at scale: a page of runs, state counts.

A web page that lists every try of every instance of 25 runs of a 2,000-item fan-out
would move 50,000 rows on each refresh. These queries answer what such a page shows
instead: runs one page at a time (keyset pagination on (logical date, id), so a page
stays right while new runs arrive), the number of instances of each task in each state
counted in the database, and the latest try of instances one page at a time.

Only the latest try of an instance counts: a task that failed once and then succeeded
is succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import aliased

from controller.base.states import TaskState
from controller.store.base import SessionBound
from controller.store.models import DagRun, TaskInstance
from controller.store.records import DagRunRecord, TaskInstanceRecord
from controller.store.runs import run_record
from controller.store.tasks import task_record

# run id -> task name -> state -> instances
StateCounts = dict[int, dict[str, dict[TaskState, int]]]


@dataclass(frozen=True)
class RunsPage:
    runs: list[DagRunRecord]
    """Newest logical date first."""
    next_before: int | None
    """The id to pass as ``before`` for the next (older) page; None on the last page."""


@dataclass(frozen=True)
class InstancesPage:
    instances: list[TaskInstanceRecord]
    """The latest try of each instance, by task name and item."""
    total: int


def _latest_try(run_ids: Sequence[int]) -> ColumnElement[bool]:
    """True for a row of these runs that is the latest try of its (run, task, item).

    "No later try exists", with the runs named on both sides, lets both databases read
    only these runs' rows through the unique (run, task, item, try) index; grouping for
    the maximum try and joining back, or leaving the inner side unbounded, made
    PostgreSQL read the whole table (seconds at a million rows).
    """
    later = aliased(TaskInstance)
    return ~(
        select(later.id)
        .where(
            later.run_id.in_(list(run_ids)),
            later.run_id == TaskInstance.run_id,
            later.task_name == TaskInstance.task_name,
            later.item_index == TaskInstance.item_index,
            later.try_number > TaskInstance.try_number,
        )
        .exists()
    )


def _task_rank(task_order: Sequence[str]) -> list[Any]:
    if not task_order:
        return []
    ranks = {name: rank for rank, name in enumerate(task_order)}
    return [case(ranks, value=TaskInstance.task_name, else_=len(ranks))]


class SummaryQueries(SessionBound):
    def runs_page(self, dag_name: str, *, limit: int, before: int | None = None) -> RunsPage:
        """A page of the DAG's runs, newest first, older than run ``before`` if given."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        stmt = select(DagRun).where(DagRun.dag_name == dag_name)
        if before is not None:
            anchor = self._session.get(DagRun, before)
            if anchor is None or anchor.dag_name != dag_name:
                return RunsPage(runs=[], next_before=None)
            stmt = stmt.where(
                or_(
                    DagRun.logical_date < anchor.logical_date,
                    and_(DagRun.logical_date == anchor.logical_date, DagRun.id < anchor.id),
                )
            )
        stmt = stmt.order_by(DagRun.logical_date.desc(), DagRun.id.desc()).limit(limit + 1)
        rows = list(self._session.scalars(stmt.execution_options(populate_existing=True)))
        runs = [run_record(row) for row in rows[:limit]]
        more = len(rows) > limit
        return RunsPage(runs=runs, next_before=runs[-1].id if more else None)

    def task_state_counts(self, run_ids: Sequence[int]) -> StateCounts:
        """For each run, each task's instances counted by the state of their latest try."""
        if not run_ids:
            return {}
        stmt = (
            select(
                TaskInstance.run_id,
                TaskInstance.task_name,
                TaskInstance.state,
                func.count(),
            )
            .where(TaskInstance.run_id.in_(list(run_ids)), _latest_try(run_ids))
            .group_by(TaskInstance.run_id, TaskInstance.task_name, TaskInstance.state)
        )
        counts: StateCounts = {run_id: {} for run_id in run_ids}
        for run_id, task_name, state, count in self._session.execute(stmt):
            counts[run_id].setdefault(task_name, {})[state] = count
        return counts

    def latest_instances(
        self,
        run_id: int,
        *,
        task_name: str | None = None,
        limit: int,
        offset: int = 0,
        task_order: Sequence[str] = (),
    ) -> InstancesPage:
        """The latest try of the run's instances (of one task, if given), a page at a time.

        Ordered by ``task_order`` (the run's tasks in dependency order, say), then by name
        for tasks it does not list, then by item.
        """
        if limit < 1 or offset < 0:
            raise ValueError("limit must be at least 1 and offset not negative")
        where = [TaskInstance.run_id == run_id, _latest_try([run_id])]
        if task_name is not None:
            where.append(TaskInstance.task_name == task_name)
        total = self._session.scalar(select(func.count()).select_from(TaskInstance).where(*where))
        stmt = (
            select(TaskInstance, DagRun.dag_name)
            .join(DagRun, DagRun.id == TaskInstance.run_id)
            .where(*where)
            .order_by(*_task_rank(task_order), TaskInstance.task_name, TaskInstance.item_index)
            .limit(limit)
            .offset(offset)
            .execution_options(populate_existing=True)
        )
        rows = [task_record(ti, dag_name) for ti, dag_name in self._session.execute(stmt)]
        return InstancesPage(instances=rows, total=total or 0)
