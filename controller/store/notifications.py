"""Telling the engine at once that another process asked it for something.

`kubedag trigger` (and any other process writing a request: a queued run, later a cancel
or a retry) writes to the database, while the engine runs elsewhere. Polling finds such
a request within the poll interval (seconds); PostgreSQL's LISTEN/NOTIFY finds it in
milliseconds. The writer calls `UnitOfWork.notify_requests_pending()` in the transaction
that stores the request, so the notification is delivered when, and only if, that
transaction commits: a listener woken by it always finds the request, and a rolled-back
request wakes nobody.

A notification says what waits (`RUNS` or `REQUESTS`, its payload), so the engine looks
only for that: a trigger's path to its first pod does not also read the request table.

`RequestListener` holds a connection of its own (a LISTEN lives on one session; a
pooled connection would be handed to other work), waits on its socket with `select`, and
calls `on_request` for every batch of notifications. When the connection drops it
reconnects with a capped, jittered backoff and calls `on_request` once listening again,
since notifications sent while it was away are lost. It gives up after
`MAX_RECONNECTS` failures in a row and says so: the engine's poll still finds every
request, seconds later. SQLite has no NOTIFY; there the poll is the only path.

The same listener carries a second signal between controller replicas: a push webhook
that reached a standby (the Service sends them to every replica) is passed on as a
notification on PUSH_CHANNEL, so the leader syncs at once instead of at its next
interval.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from controller.base.backoff import Backoff

log = logging.getLogger(__name__)

CHANNEL = "kubedag_requests"
PUSH_CHANNEL = "kubedag_git_push"
RECONNECT_BACKOFF = Backoff(base=0.5, cap=30.0, max_attempts=None, max_elapsed=None)
MAX_RECONNECTS = 40
"""About 18 minutes of failures in a row at the capped delay before the listener stops."""
KEEPALIVE_SECONDS = 30.0
"""An idle listener checks its connection this often, so a dead one is noticed."""
JOIN_TIMEOUT_SECONDS = 5.0

RUNS = "runs"
"""A payload: a run was queued."""
REQUESTS = "requests"
"""A payload: an operator's request (cancel, retry, mark) was queued."""
EVERYTHING = frozenset({RUNS, REQUESTS})
"""What may wait when the listener cannot know: at (re)connect, or an empty payload."""

OnRequest = Callable[[frozenset[str]], None]


def supports_notify(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def notify_requests_pending(
    session: Session, *, channel: str = CHANNEL, payload: str = REQUESTS
) -> None:
    """Queue a notification on `channel`, sent by PostgreSQL when this transaction commits.

    Several calls in one transaction with the same payload are sent as one.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
        )


class RequestListener:
    """LISTEN on `channel` on a connection of its own; `on_request(payloads)` when anything
    arrives."""

    def __init__(self, engine: Engine, on_request: OnRequest, *, channel: str = CHANNEL) -> None:
        if not supports_notify(engine):
            raise ValueError(f"{engine.dialect.name} has no LISTEN/NOTIFY")
        self._engine = engine
        self._channel = channel
        self._on_request = on_request
        self._stopping = threading.Event()
        self._stop_read, self._stop_write = os.pipe()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()
        """Set while LISTEN is active (tests and readiness wait on it)."""
        self.reconnects = 0
        self.error: BaseException | None = None
        """The last failure, once the listener gave up."""

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="kubedag-request-listener", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        os.write(self._stop_write, b"x")
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                log.warning("the request listener did not stop within %.0fs", JOIN_TIMEOUT_SECONDS)
            self._thread = None
        os.close(self._stop_read)
        os.close(self._stop_write)

    def _run(self) -> None:
        # The driver's own errors: the listener talks to its connection directly.
        driver_error = self._engine.dialect.loaded_dbapi.Error
        failures = 0
        while not self._stopping.is_set():
            try:
                self._listen()
                return
            except (SQLAlchemyError, driver_error, OSError) as error:
                self.listening.clear()
                failures += 1
                if failures > MAX_RECONNECTS:
                    self.error = error
                    log.error(
                        "the request listener gave up after %d failures in a row (%s); "
                        "requests from other processes are found by polling only",
                        MAX_RECONNECTS,
                        error,
                    )
                    return
                pause = RECONNECT_BACKOFF.delay(failures)
                log.warning(
                    "the request listener lost its connection (%s); again in %.1fs", error, pause
                )
                self.reconnects += 1
                if self._stopping.wait(pause):
                    return
            except BaseException as error:
                self.listening.clear()
                self.error = error
                log.exception("the request listener failed; requests are found by polling only")
                return

    def _listen(self) -> None:
        # detach(): the connection leaves the pool for good (closed when we are done) but
        # keeps the pool's connect settings: timeouts, application name.
        pooled = self._engine.raw_connection()
        connection: Any = pooled.driver_connection
        pooled.detach()
        try:
            connection.rollback()
            connection.autocommit = True
            with connection.cursor() as cursor:
                # Named apart from the pool's connections, for whoever reads pg_stat_activity.
                cursor.execute("SET application_name = 'kubedag-listener'")
                cursor.execute(f"LISTEN {self._channel}")
            # Requests made while nobody listened were not delivered: look once.
            self._on_request(EVERYTHING)
            self.listening.set()
            self._wait_for_notifications(connection)
        finally:
            self.listening.clear()
            pooled.close()

    def _wait_for_notifications(self, connection: Any) -> None:
        while not self._stopping.is_set():
            readable, _, _ = select.select([connection, self._stop_read], [], [], KEEPALIVE_SECONDS)
            if self._stop_read in readable:
                return
            if not readable:
                # Idle: a query over a dead connection raises, which reconnects.
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
            connection.poll()
            if connection.notifies:
                payloads = frozenset(n.payload or "" for n in connection.notifies)
                connection.notifies.clear()
                self._on_request(EVERYTHING if "" in payloads else payloads)
