"""The one name for "the database failed", for callers above the store.

The store is the only package that imports SQLAlchemy (docs/architecture.md). Its
callers still need to tell a database that cannot be reached or refuses a statement from
a bug of their own; they catch `DatabaseError`, the store's name for SQLAlchemy's base
error, and show `describe_database_error`'s first line to users.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

DatabaseError = SQLAlchemyError


def describe_database_error(error: BaseException) -> str:
    """The driver's own first line (host, refusal) rather than SQLAlchemy's wrapper text."""
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]
