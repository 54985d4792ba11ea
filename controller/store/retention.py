"""Deleting old history in small batches: finished runs with their rows, old events.

Each batch is one short transaction that first locks the runs it picked (`FOR UPDATE`
on PostgreSQL; SQLite's write lock is already held), so a run that an operator retries
at the same moment either is deleted whole before the retry sees it, or is retried and
left alone: a run is deleted only while it is still finished and older than the cutoff.
Batches are bounded by task rows as well as runs, so a run with a 2,000-item fan-out
does not turn one batch into a lock held for seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Delete, Select, delete, func, or_, select

from controller.base.states import DagRunState
from controller.store.base import SessionBound, rowcount
from controller.store.models import ActionRequest, DagRun, Event, TaskInstance

FINISHED_RUN_STATES = [state for state in DagRunState if state.finished]


@dataclass(frozen=True)
class Deleted:
    runs: list[int]
    task_instances: int
    events: int
    requests: int


class RetentionQueries(SessionBound):
    def count_old_history(self, cutoff: datetime) -> Deleted:
        """What `delete_old_runs` would delete in all, for a dry run."""
        old = _old_runs(cutoff)
        runs = list(self._session.scalars(old))
        ids = select(old.subquery().c.id)
        count = self._count
        return Deleted(
            runs=runs,
            task_instances=count(
                select(func.count()).select_from(TaskInstance).where(TaskInstance.run_id.in_(ids))
            ),
            events=count(
                select(func.count())
                .select_from(Event)
                .where(or_(Event.run_id.in_(ids), _old_unattached(cutoff)))
            ),
            requests=count(
                select(func.count()).select_from(ActionRequest).where(ActionRequest.run_id.in_(ids))
            ),
        )

    def delete_old_runs(self, cutoff: datetime, *, max_runs: int, max_rows: int) -> Deleted:
        """Delete up to `max_runs` finished runs older than `cutoff`, and their rows."""
        candidates = list(
            self._session.scalars(_old_runs(cutoff).limit(max_runs).with_for_update())
        )
        if not candidates:
            return Deleted([], 0, 0, 0)
        sizes = dict(
            self._session.execute(
                select(TaskInstance.run_id, func.count())
                .where(TaskInstance.run_id.in_(candidates))
                .group_by(TaskInstance.run_id)
            ).all()
        )
        chosen: list[int] = []
        rows = 0
        for run_id in candidates:
            size = int(sizes.get(run_id, 0))
            if chosen and rows + size > max_rows:
                break
            chosen.append(run_id)
            rows += size
        events = self._delete(delete(Event).where(Event.run_id.in_(chosen)))
        requests = self._delete(delete(ActionRequest).where(ActionRequest.run_id.in_(chosen)))
        tasks = self._delete(delete(TaskInstance).where(TaskInstance.run_id.in_(chosen)))
        self._delete(delete(DagRun).where(DagRun.id.in_(chosen)))
        return Deleted(chosen, tasks, events, requests)

    def delete_old_events(self, cutoff: datetime, *, limit: int) -> int:
        """Delete up to `limit` events older than `cutoff` that belong to no run."""
        ids = select(Event.id).where(_old_unattached(cutoff)).order_by(Event.id).limit(limit)
        chosen = list(self._session.scalars(ids))
        if not chosen:
            return 0
        return self._delete(delete(Event).where(Event.id.in_(chosen)))

    def _count(self, stmt: Select[int]) -> int:
        return int(self._session.execute(stmt).scalar_one())

    def _delete(self, stmt: Delete) -> int:
        return rowcount(self._session.execute(stmt.execution_options(synchronize_session=False)))


def _old_runs(cutoff: datetime) -> Select[int]:
    return (
        select(DagRun.id)
        .where(DagRun.state.in_(FINISHED_RUN_STATES), DagRun.finished_at < cutoff)
        .order_by(DagRun.id)
    )


def _old_unattached(cutoff: datetime) -> ColumnElement[bool]:
    return Event.run_id.is_(None) & (Event.at < cutoff)
