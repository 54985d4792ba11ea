"""The tables, as SQLAlchemy 2.x typed models: the schema the migrations create.

The invariants live in the schema, not in the code that writes it: a DagRun is unique
per (dag, logical date) and a TaskInstance per (run, task, item, try), so two
controllers or a restart racing to create the same row produce one row, whatever order
their statements arrive in. Nothing outside `controller.store` sees these classes: the
repository hands out frozen records, so no caller holds a session or lazy-loads.

Constraint names come from a naming convention so that later migrations can refer to
them by a name that is the same on PostgreSQL and SQLite.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from controller.base.states import DagRunState, FailureKind, RunType, TaskState
from controller.store.types import StrEnumText, UTCDateTime, json_column_type

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Dag(Base):
    """One DAG file. Rows are never deleted, so run history keeps its parent."""

    __tablename__ = "dags"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    # The newest commit at which the file was read, valid or not.
    revision: Mapped[str] = mapped_column(String(64))
    # The commit, hash and resolved spec of the last valid version: what new runs use.
    spec_revision: Mapped[str | None] = mapped_column(String(64))
    spec_hash: Mapped[str | None] = mapped_column(String(128))
    spec: Mapped[dict[str, Any] | None] = mapped_column(json_column_type())
    valid: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # The `spec.paused` of the newest valid version: an operator's pause stands until git
    # changes this value. `paused_by` says who set `paused` ("git" or the operator).
    spec_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_by: Mapped[str | None] = mapped_column(String(128))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DagRun(Base):
    __tablename__ = "dag_runs"
    __table_args__ = (
        UniqueConstraint("dag_name", "logical_date"),
        Index(None, "state"),
        Index(None, "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_name: Mapped[str] = mapped_column(String(63), ForeignKey("dags.name"))
    logical_date: Mapped[datetime] = mapped_column(UTCDateTime())
    run_type: Mapped[RunType] = mapped_column(StrEnumText(RunType))
    revision: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(json_column_type())
    params: Mapped[dict[str, Any]] = mapped_column(json_column_type())
    state: Mapped[DagRunState] = mapped_column(StrEnumText(DagRunState))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A backfill's own cap on its runs running at once, beside the DAG's maxActiveRuns.
    max_active_runs: Mapped[int | None] = mapped_column(Integer)


class TaskInstance(Base):
    """One try of one (task, item) of a run: a retry is a new row, never a reused one."""

    __tablename__ = "task_instances"
    __table_args__ = (
        UniqueConstraint("run_id", "task_name", "item_index", "try_number"),
        # "Pending and due" and "by state" share this index: state is its prefix.
        Index(None, "state", "not_before"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("dag_runs.id", ondelete="CASCADE"))
    task_name: Mapped[str] = mapped_column(String(63))
    item_index: Mapped[int] = mapped_column(Integer, default=0)
    item: Mapped[Any] = mapped_column(json_column_type(), nullable=True)
    try_number: Mapped[int] = mapped_column(Integer)
    state: Mapped[TaskState] = mapped_column(StrEnumText(TaskState))
    failure_kind: Mapped[FailureKind | None] = mapped_column(StrEnumText(FailureKind))
    pod_name: Mapped[str | None] = mapped_column(String(253), unique=True)
    namespace: Mapped[str | None] = mapped_column(String(63))
    node: Mapped[str | None] = mapped_column(String(253))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who set this try's state by hand (cancel, mark, clear); None when it ran its course.
    set_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WatchCursor(Base):
    """Where the pod watch of one namespace resumes: written with the state it produced."""

    __tablename__ = "watch_cursors"

    namespace: Mapped[str] = mapped_column(String(63), primary_key=True)
    resource_version: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Event(Base):
    """The append-only log: what happened, to which dag/run/task/try, and when."""

    __tablename__ = "events"
    __table_args__ = (
        Index(None, "dag_name", "id"),
        Index(None, "run_id", "id"),
        Index(None, "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(64))
    dag_name: Mapped[str | None] = mapped_column(String(63))
    run_id: Mapped[int | None] = mapped_column(Integer)
    task_name: Mapped[str | None] = mapped_column(String(63))
    item_index: Mapped[int | None] = mapped_column(Integer)
    try_number: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(json_column_type())


class ActionRequest(Base):
    """An operator's request (cancel, retry, mark, ...) waiting for the engine that owns runs.

    The CLI and the HTTP API check a request against the run's state and queue it here;
    the leading controller's engine applies it in its own loop, where the run's planner
    lives, and records the outcome. So a request made while no controller runs is applied
    when one starts, and a controller killed mid-way applies it again (each is idempotent).
    """

    __tablename__ = "action_requests"
    __table_args__ = (Index(None, "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    dag_name: Mapped[str | None] = mapped_column(String(63))
    run_id: Mapped[int | None] = mapped_column(Integer)
    task_name: Mapped[str | None] = mapped_column(String(63))
    item_index: Mapped[int | None] = mapped_column(Integer)
    options: Mapped[dict[str, Any]] = mapped_column(json_column_type())
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(Text)
