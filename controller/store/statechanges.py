"""Many task compare-and-sets in one go, with the outcome of one-by-one compare-and-sets.

A burst of launches or watch events changes hundreds of rows per transaction; an
``UPDATE ... WHERE id = :id AND state IN (:expected)`` statement each costs the
controller far more CPU in statement building than the database spends on it. Here the
rows are read once, locked (``SELECT ... FOR UPDATE`` on PostgreSQL; a SQLite
transaction already holds the database's write lock from its ``BEGIN IMMEDIATE``), the
winners are decided in order exactly as a loop of single compare-and-sets would decide
them (a row moved by an earlier change of the batch is seen in its new state by a later
one), and each winning row is written with one executemany per set of columns.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from controller.base.states import TaskState
from controller.store.base import utcnow
from controller.store.models import TaskInstance
from controller.store.tasks import IN_CHUNK, TaskFields

TABLE = cast(Table, TaskInstance.__table__)


@dataclass(frozen=True)
class StateChange:
    """Move instance ``ti_id`` to ``new`` if it is in one of ``expected``; set ``fields``."""

    ti_id: int
    expected: Collection[TaskState]
    new: TaskState
    fields: TaskFields = field(default_factory=lambda: TaskFields())

    def __post_init__(self) -> None:
        if not self.expected:
            raise ValueError("a compare-and-set needs at least one expected state")


def apply_state_changes(session: Session, changes: Sequence[StateChange]) -> list[bool]:
    """Apply ``changes`` in order; for each, whether it won (as a lone compare-and-set would)."""
    if not changes:
        return []
    current = _lock_states(session, sorted({change.ti_id for change in changes}))
    won: list[bool] = []
    writes: dict[int, dict[str, Any]] = {}
    for change in changes:
        state = current.get(change.ti_id)
        wins = state is not None and state in change.expected
        won.append(wins)
        if wins:
            current[change.ti_id] = change.new
            # Later changes of the same row add to (and override) the earlier ones.
            writes.setdefault(change.ti_id, {}).update(change.fields, state=change.new)
    _write(session, writes)
    return won


def _lock_states(session: Session, ids: list[int]) -> dict[int, TaskState]:
    states: dict[int, TaskState] = {}
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        stmt = (
            select(TaskInstance.id, TaskInstance.state)
            .where(TaskInstance.id.in_(chunk))
            .order_by(TaskInstance.id)
            .with_for_update()
        )
        states.update((ti_id, state) for ti_id, state in session.execute(stmt))
    return states


def _write(session: Session, writes: dict[int, dict[str, Any]]) -> None:
    """One executemany per set of columns; rows in id order, the order they were locked."""
    now = utcnow()
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for ti_id in sorted(writes):
        values = writes[ti_id]
        columns = tuple(sorted(values))
        params = {f"v_{column}": value for column, value in values.items()}
        groups.setdefault(columns, []).append({"ti_id": ti_id, "v_updated_at": now, **params})
    for columns, rows in groups.items():
        stmt = (
            update(TABLE)
            .where(TABLE.c.id == bindparam("ti_id"))
            .values({column: bindparam(f"v_{column}") for column in (*columns, "updated_at")})
        )
        session.execute(stmt, rows)
