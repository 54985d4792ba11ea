"""What every group of store queries shares: the session and upserts per backend.

Idempotent creation is `INSERT ... ON CONFLICT DO NOTHING`, never "select, then insert
if absent": between the select and the insert another controller can insert the same
row, and then one of them fails or, without the constraint, both succeed. PostgreSQL
and SQLite spell the conflict clause the same way but through different dialect
constructs, which `insert_for` chooses.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

Upsert = postgresql.Insert | sqlite.Insert
S = TypeVar("S", bound=enum.StrEnum)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rowcount(result: Any) -> int:
    """Rows matched by an UPDATE: 1 means a compare-and-set won, 0 that it lost."""
    count: int = result.rowcount
    return count


def state_list(expected: S | Collection[S]) -> list[S]:
    """One state or several, as a list; an empty list would match no row, silently."""
    if isinstance(expected, enum.StrEnum):
        return [expected]
    states = list(expected)
    if not states:
        raise ValueError("a compare-and-set needs at least one expected state")
    return states


class SessionBound:
    """Holds the one session of a unit of work; the query mixins build on it."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _insert(self, model: Any) -> Upsert:
        if self._session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)
