"""DagRun rows: created once per (dag, logical date), moved between states by CAS.

`create_run` is the scheduler's only way to make a run, and it is an insert that does
nothing on conflict with the unique (dag_name, logical_date) key: a restarted scheduler,
a catch-up pass and a second controller all firing for the same date end with one row,
and each learns whether it was the one that created it. State changes are
`UPDATE ... WHERE id = :id AND state IN (:expected)`, so of two writers that both read
"running", only one moves the run on.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import func, select, update

from controller.base.states import DagRunState, RunType
from controller.store.base import SessionBound, rowcount, state_list, utcnow
from controller.store.models import DagRun
from controller.store.notifications import RUNS, notify_requests_pending
from controller.store.records import DagRunRecord


class RunFields(TypedDict, total=False):
    """Columns a run state change may set alongside the state."""

    started_at: datetime | None
    finished_at: datetime | None
    revision: str
    spec: dict[str, Any]


def run_record(row: DagRun) -> DagRunRecord:
    return DagRunRecord(
        id=row.id,
        dag_name=row.dag_name,
        logical_date=row.logical_date,
        run_type=row.run_type,
        revision=row.revision,
        spec=row.spec,
        params=row.params,
        state=row.state,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        max_active_runs=row.max_active_runs,
    )


class RunQueries(SessionBound):
    def create_run(
        self,
        *,
        dag_name: str,
        logical_date: datetime,
        run_type: RunType,
        revision: str,
        spec: dict[str, Any],
        params: dict[str, Any] | None = None,
        state: DagRunState = DagRunState.QUEUED,
        max_active_runs: int | None = None,
    ) -> tuple[DagRunRecord, bool]:
        """The run of `dag_name` at `logical_date`, and whether this call created it.

        When the run already exists it is returned unchanged: the first writer's
        revision, spec and params stand. A run created QUEUED notifies the engine's
        listener when the transaction commits.
        """
        stmt = (
            self._insert(DagRun)
            .values(
                dag_name=dag_name,
                logical_date=logical_date,
                run_type=run_type,
                revision=revision,
                spec=spec,
                params=params or {},
                state=state,
                created_at=utcnow(),
                max_active_runs=max_active_runs,
            )
            .on_conflict_do_nothing(index_elements=[DagRun.dag_name, DagRun.logical_date])
            .returning(DagRun.id)
        )
        created_id = self._session.execute(stmt).scalar_one_or_none()
        if created_id is not None and state is DagRunState.QUEUED:
            notify_requests_pending(self._session, payload=RUNS)
        existing = self._session.scalars(
            select(DagRun)
            .where(DagRun.dag_name == dag_name, DagRun.logical_date == logical_date)
            .execution_options(populate_existing=True)
        ).one()
        return run_record(existing), created_id is not None

    def get_run(self, run_id: int) -> DagRunRecord | None:
        row = self._session.get(DagRun, run_id, populate_existing=True)
        return None if row is None else run_record(row)

    def find_run(self, dag_name: str, logical_date: datetime) -> DagRunRecord | None:
        row = self._session.scalars(
            select(DagRun)
            .where(DagRun.dag_name == dag_name, DagRun.logical_date == logical_date)
            .execution_options(populate_existing=True)
        ).one_or_none()
        return None if row is None else run_record(row)

    def list_runs(
        self,
        *,
        dag_name: str | None = None,
        states: Collection[DagRunState] | None = None,
        limit: int = 100,
    ) -> list[DagRunRecord]:
        """Newest logical date first."""
        stmt = select(DagRun).order_by(DagRun.logical_date.desc(), DagRun.id.desc()).limit(limit)
        if dag_name is not None:
            stmt = stmt.where(DagRun.dag_name == dag_name)
        if states is not None:
            stmt = stmt.where(DagRun.state.in_(list(states)))
        rows = self._session.scalars(stmt.execution_options(populate_existing=True))
        return [run_record(row) for row in rows]

    def last_run(self, dag_name: str, *, run_type: RunType | None = None) -> DagRunRecord | None:
        """The run with the latest logical date, optionally of one run type only."""
        stmt = (
            select(DagRun)
            .where(DagRun.dag_name == dag_name)
            .order_by(DagRun.logical_date.desc())
            .limit(1)
        )
        if run_type is not None:
            stmt = stmt.where(DagRun.run_type == run_type)
        row = self._session.scalars(stmt.execution_options(populate_existing=True)).first()
        return None if row is None else run_record(row)

    def count_active_runs(self, dag_name: str | None = None) -> int:
        """Runs in state running: what maxActiveRuns limits (queued runs wait for it)."""
        stmt = select(func.count()).select_from(DagRun).where(DagRun.state == DagRunState.RUNNING)
        if dag_name is not None:
            stmt = stmt.where(DagRun.dag_name == dag_name)
        return int(self._session.execute(stmt).scalar_one())

    def count_runs_by_state(self) -> dict[str, int]:
        """How many runs are in each state (for the metrics endpoint), in one query."""
        stmt = select(DagRun.state, func.count()).group_by(DagRun.state)
        return {DagRunState(state).value: int(n) for state, n in self._session.execute(stmt)}

    def cas_run_state(
        self,
        run_id: int,
        *,
        expected: DagRunState | Collection[DagRunState],
        new: DagRunState,
        **fields: Unpack[RunFields],
    ) -> bool:
        """Move a run to `new` only if it is still in `expected`; True if this call won."""
        stmt = (
            update(DagRun)
            .where(DagRun.id == run_id, DagRun.state.in_(state_list(expected)))
            .values(state=new, **fields)
            .execution_options(synchronize_session=False)
        )
        return rowcount(self._session.execute(stmt)) == 1
