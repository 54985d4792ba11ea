"""TaskInstance rows: one per try of one (task, item) of a run.

Creation is idempotent on the unique (run, task, item, try) key, so a planner pass that
is repeated after a crash creates nothing twice. Every state change is a
compare-and-set: the launcher moves pending -> launched and the watcher moves
launched/running -> finished states, and when both act on the same row at once, exactly
one `UPDATE ... WHERE state IN (:expected)` matches. Records carry the run's DAG name,
because the caps that decide what may launch (maxActiveTasks) are per DAG.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import ColumnElement, Row, Select, String, func, literal_column, select, update

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.store.base import SessionBound, rowcount, state_list, utcnow
from controller.store.models import DagRun, TaskInstance
from controller.store.records import NewTaskInstance, TaskInstanceRecord

# Ids or names per `IN (...)`: well under SQLite's limit on bound variables per statement.
IN_CHUNK = 500


class TaskFields(TypedDict, total=False):
    """Columns a task state change may set alongside the state."""

    failure_kind: FailureKind | None
    pod_name: str | None
    namespace: str | None
    node: str | None
    exit_code: int | None
    reason: str | None
    message: str | None
    result: str | None
    not_before: datetime | None
    launched_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    set_by: str | None


def task_record(row: TaskInstance | Row[Any], dag_name: str) -> TaskInstanceRecord:
    """A row as a record: an ORM object, or a plain row of the table's columns."""
    return TaskInstanceRecord(
        id=row.id,
        run_id=row.run_id,
        dag_name=dag_name,
        task_name=row.task_name,
        item_index=row.item_index,
        item=row.item,
        try_number=row.try_number,
        state=row.state,
        failure_kind=row.failure_kind,
        pod_name=row.pod_name,
        namespace=row.namespace,
        node=row.node,
        exit_code=row.exit_code,
        reason=row.reason,
        message=row.message,
        result=row.result,
        not_before=row.not_before,
        created_at=row.created_at,
        launched_at=row.launched_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        set_by=row.set_by,
    )


def _with_dag_name() -> Select[Any]:
    # Plain rows, not ORM objects: records are built from them at once, and building
    # thousands of objects only to copy them cost a restarted engine (and the watch, per
    # batch) most of its time reading rows.
    return select(*TaskInstance.__table__.c, DagRun.dag_name).join(
        DagRun, DagRun.id == TaskInstance.run_id
    )


def _run_dag_name() -> ColumnElement[str]:
    # The DAG name of the row a RETURNING clause returns. Written out: SQLAlchemy does
    # not correlate a scalar subquery in RETURNING with the row being inserted.
    return literal_column(
        "(SELECT dag_runs.dag_name FROM dag_runs WHERE dag_runs.id = task_instances.run_id)",
        String(),
    )


def _records(result: Iterable[Row[Any]]) -> list[TaskInstanceRecord]:
    return [task_record(row, row.dag_name) for row in result]


def _pending() -> Select[Any]:
    return _with_dag_name().where(
        TaskInstance.state == TaskState.PENDING, DagRun.state == DagRunState.RUNNING
    )


class TaskQueries(SessionBound):
    def add_task_instances(self, instances: Iterable[NewTaskInstance]) -> list[TaskInstanceRecord]:
        """Create the instances that do not exist yet; returns only those it created."""
        # One statement executed with a list of parameter sets: SQLAlchemy compiles it
        # once and sends it as multi-row INSERTs ("insertmanyvalues"), RETURNING the rows
        # inserted with their run's DAG name, so no second query reads them. A statement
        # with the rows in `.values()` was compiled anew per batch: seconds for a fan-out
        # of thousands.
        now = utcnow()
        rows = [_insert_values(instance, now) for instance in instances]
        if not rows:
            return []
        stmt = (
            self._insert(TaskInstance)
            .on_conflict_do_nothing(
                index_elements=[
                    TaskInstance.run_id,
                    TaskInstance.task_name,
                    TaskInstance.item_index,
                    TaskInstance.try_number,
                ]
            )
            .returning(*TaskInstance.__table__.c, _run_dag_name().label("dag_name"))
        )
        created = self._session.execute(stmt, rows).all()
        return sorted(_records(created), key=lambda record: record.id)

    def get_task_instances(self, ids: Sequence[int]) -> list[TaskInstanceRecord]:
        """The instances with these ids (unknown ids are left out), by id, in few queries."""
        return self._by_ids(sorted(set(ids)))

    def find_task_instances_by_pods(self, pod_names: Collection[str]) -> list[TaskInstanceRecord]:
        """The instances whose pod has one of these names, in few queries (one per chunk)."""
        names = sorted(set(pod_names))
        records: list[TaskInstanceRecord] = []
        for start in range(0, len(names), IN_CHUNK):
            chunk = names[start : start + IN_CHUNK]
            stmt = _with_dag_name().where(TaskInstance.pod_name.in_(chunk))
            records.extend(_records(self._session.execute(stmt)))
        return records

    def list_task_instances(self, run_id: int) -> list[TaskInstanceRecord]:
        """Every try of every instance of the run, by task, item and try."""
        stmt = (
            _with_dag_name()
            .where(TaskInstance.run_id == run_id)
            .order_by(TaskInstance.task_name, TaskInstance.item_index, TaskInstance.try_number)
        )
        return _records(self._session.execute(stmt))

    def list_task_instances_in_states(
        self, states: Collection[TaskState], *, limit: int = 1000
    ) -> list[TaskInstanceRecord]:
        """Instances in any of `states`, oldest first: e.g. everything the watcher owns."""
        stmt = (
            _with_dag_name()
            .where(TaskInstance.state.in_(list(states)))
            .order_by(TaskInstance.id)
            .limit(limit)
        )
        return _records(self._session.execute(stmt))

    def list_pending(
        self, *, dag_name: str | None = None, limit: int = 1000
    ) -> list[TaskInstanceRecord]:
        """Pending instances of running runs, due or not, oldest run first.

        The order admission wants: the oldest run's tries launch first, and tries still
        waiting for their retry time are included so the caller knows when to look again.
        """
        stmt = _pending().order_by(DagRun.logical_date, DagRun.id, TaskInstance.id).limit(limit)
        if dag_name is not None:
            stmt = stmt.where(DagRun.dag_name == dag_name)
        return _records(self._session.execute(stmt))

    def count_task_instances_by_state(self) -> dict[str, int]:
        """How many task instances (tries) are in each state, for the metrics endpoint."""
        stmt = select(TaskInstance.state, func.count()).group_by(TaskInstance.state)
        return {TaskState(state).value: int(n) for state, n in self._session.execute(stmt)}

    def oldest_launch(self) -> datetime | None:
        """When the longest-waiting LAUNCHED try (pod created, not yet running) was claimed."""
        stmt = select(func.min(TaskInstance.launched_at)).where(
            TaskInstance.state == TaskState.LAUNCHED
        )
        value: datetime | None = self._session.execute(stmt).scalar_one()
        return value

    def cas_task_state(
        self,
        ti_id: int,
        *,
        expected: TaskState | Collection[TaskState],
        new: TaskState,
        **fields: Unpack[TaskFields],
    ) -> bool:
        """Move an instance to `new` only if it is still in `expected`; True if this call won."""
        stmt = (
            update(TaskInstance)
            .where(TaskInstance.id == ti_id, TaskInstance.state.in_(state_list(expected)))
            .values(state=new, updated_at=utcnow(), **fields)
            .execution_options(synchronize_session=False)
        )
        return rowcount(self._session.execute(stmt)) == 1

    def _by_ids(self, ids: Sequence[int]) -> list[TaskInstanceRecord]:
        records: list[TaskInstanceRecord] = []
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            stmt = _with_dag_name().where(TaskInstance.id.in_(chunk)).order_by(TaskInstance.id)
            records.extend(_records(self._session.execute(stmt)))
        return records


def _insert_values(instance: NewTaskInstance, now: datetime) -> dict[str, Any]:
    return {
        "run_id": instance.run_id,
        "task_name": instance.task_name,
        "item_index": instance.item_index,
        "item": instance.item,
        "try_number": instance.try_number,
        "state": instance.state,
        "not_before": instance.not_before,
        "finished_at": instance.finished_at,
        "pod_name": instance.pod_name,
        "namespace": instance.namespace,
        "set_by": instance.set_by,
        "failure_kind": instance.failure_kind,
        "reason": instance.reason,
        "message": instance.message,
        "result": instance.result,
        "created_at": now,
        "updated_at": now,
    }
