"""DAG rows: the controller's view of each DAG file in the repository.

A DAG whose newest version is invalid keeps its last valid spec (and the commit it came
from), so it keeps running while its error is shown; only `spec_revision`, `spec_hash`
and `spec` describe what runs, `revision` and `error` describe what was last read.
Every write is a single upsert, so two controllers syncing the same commit cannot
collide on the primary key.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, select, update

from controller.store.base import SessionBound, rowcount, utcnow
from controller.store.models import Dag
from controller.store.records import DagRecord


def dag_record(row: Dag) -> DagRecord:
    return DagRecord(
        name=row.name,
        path=row.path,
        revision=row.revision,
        spec_revision=row.spec_revision,
        spec_hash=row.spec_hash,
        spec=row.spec,
        valid=row.valid,
        error=row.error,
        paused=row.paused,
        deleted=row.deleted,
        updated_at=row.updated_at,
        spec_paused=row.spec_paused,
        paused_by=row.paused_by,
    )


class DagQueries(SessionBound):
    def upsert_dag(
        self,
        *,
        name: str,
        path: str,
        revision: str,
        spec_hash: str,
        spec: dict[str, Any],
        paused: bool = False,
    ) -> DagRecord:
        """Record a valid version of a DAG file; `paused` is its `spec.paused`.

        The file's `paused` decides when the DAG is first seen and whenever the file
        changes it; in between, an operator's `set_dag_paused` stands.
        """
        now = utcnow()
        git_paused = {"paused": paused, "paused_by": "git" if paused else None}
        changed = Dag.spec_paused.is_distinct_from(paused)
        values: dict[str, Any] = {
            "path": path,
            "revision": revision,
            "spec_revision": revision,
            "spec_hash": spec_hash,
            "spec": spec,
            "valid": True,
            "error": None,
            "deleted": False,
            "updated_at": now,
        }
        stmt = (
            self._insert(Dag)
            .values(name=name, spec_paused=paused, **git_paused, **values)
            .on_conflict_do_update(
                index_elements=[Dag.name],
                set_={
                    **values,
                    "spec_paused": paused,
                    **{
                        column: case((changed, value), else_=getattr(Dag, column))
                        for column, value in git_paused.items()
                    },
                },
            )
        )
        self._session.execute(stmt)
        return self._require_dag(name)

    def mark_dag_invalid(self, *, name: str, path: str, revision: str, error: str) -> DagRecord:
        """Record an invalid version: the error shows, the last valid spec keeps running."""
        now = utcnow()
        values: dict[str, Any] = {
            "path": path,
            "revision": revision,
            "valid": False,
            "error": error,
            "deleted": False,
            "updated_at": now,
        }
        stmt = (
            self._insert(Dag)
            .values(name=name, paused=False, **values)
            .on_conflict_do_update(index_elements=[Dag.name], set_=values)
        )
        self._session.execute(stmt)
        return self._require_dag(name)

    def mark_dag_deleted(self, name: str) -> bool:
        """The file is gone: no more schedules, but the row and its runs stay as history."""
        return self._update_dag(name, deleted=True)

    def set_dag_paused(self, name: str, paused: bool, *, by: str = "git") -> bool:
        """Pause or unpause, saying who did; False when no DAG has that name."""
        return self._update_dag(name, paused=paused, paused_by=by if paused else None)

    def get_dag(self, name: str) -> DagRecord | None:
        row = self._session.get(Dag, name, populate_existing=True)
        return None if row is None else dag_record(row)

    def list_dags(self, *, include_deleted: bool = False) -> list[DagRecord]:
        stmt = select(Dag).order_by(Dag.name)
        if not include_deleted:
            stmt = stmt.where(Dag.deleted.is_(False))
        return [dag_record(row) for row in self._session.scalars(stmt)]

    def pause_states(self) -> dict[str, bool]:
        """Whether each DAG is paused, in one small query."""
        return {
            name: bool(paused)
            for name, paused in self._session.execute(select(Dag.name, Dag.paused))
        }

    def _update_dag(self, name: str, **values: Any) -> bool:
        stmt = (
            update(Dag)
            .where(Dag.name == name)
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        return rowcount(self._session.execute(stmt)) == 1

    def _require_dag(self, name: str) -> DagRecord:
        record = self.get_dag(name)
        if record is None:
            raise RuntimeError(f"DAG {name!r} vanished right after it was written")
        return record
