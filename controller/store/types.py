"""Column types that make both backends agree on what a timestamp and a state are.

SQLite has no time zone type: SQLAlchemy stores a datetime there as text and hands it
back naive, while PostgreSQL's `timestamptz` hands it back in the session's time zone.
Code above the store must never see a naive datetime (comparing it with an aware one
raises, and guessing its zone silently shifts retry times), so every timestamp column
uses `UTCDateTime`: it refuses naive input, normalises to UTC on the way in, and
always returns an aware UTC datetime on the way out.

States are stored as their plain string values (`StrEnumText`) rather than as native
PostgreSQL enums, so adding a state is a one-line code change rather than an
`ALTER TYPE` migration that cannot run inside a transaction.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} given to the store; pass a "
                "timezone-aware datetime (for example datetime.now(UTC))"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Stored as text without an offset: every value in the column is UTC, so
            # text order is time order and the unique (dag, logical date) key holds.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


E = TypeVar("E", bound=enum.StrEnum)


class StrEnumText(TypeDecorator[E]):
    impl = String(32)
    cache_ok = True

    def __init__(self, enum_class: type[E]) -> None:
        super().__init__()
        self.enum_class = enum_class

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        # Rejects a misspelt state before it reaches a row, not when it is read back.
        return self.enum_class(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        return self.enum_class(value)


def json_column_type() -> JSON:
    """JSON kept as written (PostgreSQL `json`, not `jsonb`), so key order survives.

    A run's spec snapshot is read back into the resolved DAG; `jsonb` would reorder its
    keys. SQL NULL stands for "absent", so a missing item or spec reads back as None.
    """
    return JSON(none_as_null=True)
