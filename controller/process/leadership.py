"""The work only the leading replica does, started and stopped as leadership comes and goes.

A term of leadership gets fresh parts (scheduler, engine, executor), built and started
on a thread of their own: the elector's callbacks must return promptly, while starting
the engine means recovering running runs and re-listing pods, which can take seconds.
Stopping is the other way round and synchronous, in the order that keeps the invariant
"on losing the lease, stop launching first": the engine (which launches) stops before
the scheduler, and all of it before the elector releases the lease, so a standby that
takes over never races a launcher that is still going.

DAG rows are written only by the leader too (see `schedule`): two replicas syncing at
slightly different moments could otherwise write an older commit's view over a newer
one. A standby keeps git-sync running so that its checkout is warm and its readiness
honest, and applies the newest revision the moment it takes over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from controller.store import DagRecord

log = logging.getLogger(__name__)


class Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class Scheduling(Protocol):
    def apply(self, dags: Iterable[DagRecord]) -> None: ...

    @property
    def job_ids(self) -> list[str]: ...


@dataclass
class LeaderParts:
    """One term's parts; `stop_order` lists them in the order they must stop."""

    scheduler: Scheduling
    wake: Callable[[list[int]], None]
    """Tells the engine that runs were queued, so it need not wait for its next poll."""
    requests_pending: Callable[[], None]
    """Tells the engine that an operator's request was queued (cancel, retry, mark)."""
    start_order: tuple[Startable, ...]
    stop_order: tuple[Startable, ...]


class Leadership:
    """Starts a term's parts when leadership begins and stops them when it ends."""

    def __init__(
        self,
        *,
        build: Callable[[], LeaderParts],
        list_dags: Callable[[], list[DagRecord]],
        on_leading: Callable[[], None] | None = None,
    ) -> None:
        self._build = build
        self._list_dags = list_dags
        self._on_leading = on_leading
        # Held while a term's parts start or stop and while DAGs reach its scheduler,
        # so a scheduler never sees a DAG list older than one already applied.
        self._lock = threading.Lock()
        self._term = 0
        self._parts: LeaderParts | None = None
        self._leading = threading.Event()
        self._starter: threading.Thread | None = None
        self.failed: BaseException | None = None

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    @property
    def active(self) -> bool:
        """The term's parts are started (the scheduler and engine are running)."""
        with self._lock:
            return self._parts is not None

    def begin(self) -> None:
        """Leadership began: start a new term in the background (returns at once)."""
        with self._lock:
            self._term += 1
            term = self._term
            self._leading.set()
        self._starter = threading.Thread(
            target=self._start_term, args=(term,), name="kubedag-leader-start", daemon=True
        )
        self._starter.start()

    def end(self) -> None:
        """Leadership ended (or the process stops): stop launching, then everything else."""
        self._leading.clear()
        with self._lock:
            self._term += 1
            parts, self._parts = self._parts, None
        if parts is None:
            return
        for part in parts.stop_order:
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)
        log.info("leader work stopped")

    def schedule(self, dags: Iterable[DagRecord]) -> None:
        """Hand DAGs to this term's scheduler, if a term is running."""
        with self._lock:
            if self._parts is not None:
                self._parts.scheduler.apply(dags)

    def scheduled_dags(self) -> list[str] | None:
        """The DAGs with a cron job in this term's scheduler; None when not leading."""
        with self._lock:
            return None if self._parts is None else self._parts.scheduler.job_ids

    def wake(self, run_ids: list[int]) -> None:
        """Runs were queued outside the scheduler (a manual trigger): start them now."""
        with self._lock:
            if self._parts is not None:
                self._parts.wake(run_ids)

    def requests_pending(self) -> None:
        """An operator's request was queued in this process: apply it now."""
        with self._lock:
            if self._parts is not None:
                self._parts.requests_pending()

    def wait_started(self, timeout: float) -> bool:
        """For tests and `kubedag dev`: wait until the term's parts run."""
        starter = self._starter
        if starter is not None:
            starter.join(timeout)
        return self.active

    def _start_term(self, term: int) -> None:
        try:
            if self._on_leading is not None:
                self._on_leading()
            parts = self._build()
            with self._lock:
                if term != self._term:
                    return
                started: list[Startable] = []
                try:
                    for part in parts.start_order:
                        part.start()
                        started.append(part)
                except BaseException:
                    for part in reversed(started):
                        part.stop()
                    raise
                self._parts = parts
                parts.scheduler.apply(self._list_dags())
            log.info("leader work started")
        except Exception as error:
            self.failed = error
            log.exception("starting the leader's work failed")
