"""The store's public face: a `Store` that opens units of work.

A unit of work is one database transaction: everything done through it commits
together or not at all. That is what lets the watcher write a task's new state and the
watch's resourceVersion as one fact, so a crash between the two cannot leave the cursor
ahead of the state (an event lost) or behind it (an event applied twice).

Transactions are short and never span I/O to Kubernetes or git: open one, read or
write, leave. Everything returned is a frozen record, valid after the transaction ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from controller.store.dags import DagQueries
from controller.store.database import create_engine_for, require_migrated
from controller.store.journal import JournalQueries
from controller.store.notifications import (
    CHANNEL,
    PUSH_CHANNEL,
    OnRequest,
    RequestListener,
    notify_requests_pending,
    supports_notify,
)
from controller.store.requests import RequestQueries
from controller.store.retention import RetentionQueries
from controller.store.runs import RunQueries
from controller.store.statechanges import StateChange, apply_state_changes
from controller.store.summaries import SummaryQueries
from controller.store.tasks import TaskQueries


class UnitOfWork(
    DagQueries,
    RunQueries,
    TaskQueries,
    JournalQueries,
    RequestQueries,
    SummaryQueries,
    RetentionQueries,
):
    """The queries of one transaction; see the mixins for each kind of row."""

    def __init__(self, session: Session) -> None:
        super().__init__(session)

    def cas_task_states(self, changes: Sequence[StateChange]) -> list[bool]:
        """Many compare-and-sets at once; for each, whether it won, as one by one they would."""
        return apply_state_changes(self._session, changes)

    def notify_requests_pending(self) -> None:
        """Wake the engine's listener when this transaction commits (PostgreSQL only).

        Call it in every transaction that leaves an operator's request for the engine in
        the database (a queued run does it itself); without it the engine finds the
        request at its next poll, seconds later.
        """
        notify_requests_pending(self._session)

    def notify_git_push(self) -> None:
        """Tell the leading replica, when this transaction commits, that a push webhook
        arrived here (PostgreSQL only: SQLite has one process, so no other replica)."""
        notify_requests_pending(self._session, channel=PUSH_CHANNEL)


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False, autoflush=False)

    @classmethod
    def connect(cls, url: str) -> Store:
        """A store on `url`, refusing (NotMigratedError) a schema this kubedag cannot use."""
        engine = create_engine_for(url)
        try:
            require_migrated(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        """One transaction: commits when the block ends, rolls back if it raises."""
        with self._sessions.begin() as session:
            yield UnitOfWork(session)

    def listen_for_requests(
        self, on_request: OnRequest, *, channel: str = CHANNEL
    ) -> RequestListener | None:
        """A started listener calling `on_request(payloads)` on each batch of notifications
        on `channel` (requests for the engine, or PUSH_CHANNEL); None on SQLite."""
        if not supports_notify(self.engine):
            return None
        listener = RequestListener(self.engine, on_request, channel=channel)
        listener.start()
        return listener

    def close(self) -> None:
        """Close the pooled connections; the store is unusable afterwards."""
        self.engine.dispose()
