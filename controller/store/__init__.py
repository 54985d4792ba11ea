"""The state store: the only package that imports SQLAlchemy.

Everything above it (engine, scheduler, executor, CLI) talks to the database through
`Store.transaction()` and the frozen records it returns, so SQL, sessions and the
differences between PostgreSQL and SQLite stay in here.
"""

from controller.store.database import (
    NotMigratedError,
    create_engine_for,
    current_revision,
    display_url,
    head_revision,
    require_migrated,
    upgrade,
)
from controller.store.notifications import PUSH_CHANNEL, REQUESTS, RUNS, RequestListener
from controller.store.records import (
    ActionRequestRecord,
    DagRecord,
    DagRunRecord,
    EventRecord,
    NewEvent,
    NewTaskInstance,
    TaskInstanceRecord,
)
from controller.store.repository import Store, UnitOfWork
from controller.store.statechanges import StateChange
from controller.store.summaries import InstancesPage, RunsPage, StateCounts

__all__ = [
    "PUSH_CHANNEL",
    "REQUESTS",
    "RUNS",
    "ActionRequestRecord",
    "DagRecord",
    "DagRunRecord",
    "EventRecord",
    "InstancesPage",
    "NewEvent",
    "NewTaskInstance",
    "NotMigratedError",
    "RequestListener",
    "RunsPage",
    "StateChange",
    "StateCounts",
    "Store",
    "TaskInstanceRecord",
    "UnitOfWork",
    "create_engine_for",
    "current_revision",
    "display_url",
    "head_revision",
    "require_migrated",
    "upgrade",
]
