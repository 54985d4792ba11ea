"""The run engine: the imperative shell that turns planner decisions into rows and pods.

One thread, the loop, owns every planner and the queue of pending tries (held by its
`RunTracker`, whose methods are the loop's steps); everything else talks to it through
an inbox under a condition variable. Executor threads call `apply` (the
`UpdateSink`), which commits their observations in one transaction, puts the changed
rows in the inbox and wakes the loop, so "upstream succeeded -> downstream launched" is
a few milliseconds, not a polling interval. The loop then, per step: starts queued
runs within maxActiveRuns, feeds changed rows to their runs' planners (`advance`, only
the changed rows: linear over a run), writes the plans in one transaction, and launches
due tries within maxActiveTasks and the global parallelism cap, one transaction per
batch of compare-and-sets from PENDING to LAUNCHED, each with its deterministic pod
name, before handing the batch to the executor. A run's start, its first tries and
their claim are one transaction, the fewest round trips from a trigger to its pod.

Operators' requests (cancel, retry, mark; see `actions`) are applied here too, in the
loop, because the loop owns the planners they change: looked for on every poll and at
once when `requests_pending` is called (by the API in this process, or by a database
notification). Pods of tries an operator ended are stopped only after their new state
is committed; the request is answered after that, so a crash in between applies it
again, which only stops the same pods again.

Crashes: every decision is written before it is acted on, and acting on it again is
harmless. At start (and after a loop error) every RUNNING run is rebuilt from its rows
with `RunPlanner.recover`, and every LAUNCHED try is handed to the executor again as a
relaunch of the same pod name (at start, not to an executor that finds the missing pods
itself): the executor adopts a pod that exists. The engine never
creates a second try for a LAUNCHED or RUNNING row. A compare-and-set that loses means
this planner is stale (another controller, a stale view): that run is rebuilt from
fresh rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from controller.base.backoff import Backoff
from controller.engine.graph import GraphCache
from controller.engine.retries import DEFAULT_MAX_INFRA_RETRIES
from controller.engine.seam import CursorUpdate, Executor, LaunchOrder, TaskUpdate
from controller.runtime.inbox import Inbox
from controller.runtime.launching import hand_out, orders_to_relaunch
from controller.runtime.tracker import EngineStats, RunTracker
from controller.runtime.updates import commit_updates
from controller.store import REQUESTS, RUNS, RequestListener, Store, TaskInstanceRecord

__all__ = ["Engine", "EngineStats", "EngineStoppedError"]

log = logging.getLogger(__name__)

LAUNCH_BATCH = 500
POLL_SECONDS = 2.0
"""How often queued runs and requests made by another process (`kubedag trigger`,
`kubedag cancel`) are looked for.

On PostgreSQL the engine is told at once (LISTEN/NOTIFY); the poll is what finds them
on SQLite, and a fallback while the listener reconnects."""
MAX_LOOP_FAILURES = 30
FAILURE_BACKOFF = Backoff(base=0.4, cap=30.0, max_attempts=None, max_elapsed=None)


def utcnow() -> datetime:
    return datetime.now(UTC)


class EngineStoppedError(RuntimeError):
    """The engine is not started: it writes nothing, so the caller's batch was not stored."""


class Engine:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        *,
        parallelism: int = 1024,
        max_infra_retries: int = DEFAULT_MAX_INFRA_RETRIES,
        clock: Callable[[], datetime] = utcnow,
        launch_batch: int = LAUNCH_BATCH,
        poll_seconds: float = POLL_SECONDS,
        on_tries_finished: Callable[[Sequence[TaskInstanceRecord]], None] | None = None,
    ) -> None:
        self._store = store
        self._on_tries_finished = on_tries_finished
        self._executor = executor
        self._max_infra_retries = max_infra_retries
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._relaunch_graphs = GraphCache()
        self._relaunch_lock = threading.Lock()
        self._inbox = Inbox()
        self._started = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_poll = 0.0
        self.listener: RequestListener | None = None
        """Wakes the loop when another process queues a run or a request (PostgreSQL only)."""
        self.error: BaseException | None = None
        """Why the loop gave up, after MAX_LOOP_FAILURES failures in a row."""
        self._tracker = RunTracker(
            store,
            executor,
            self._inbox,
            stopping=self._stopping,
            parallelism=parallelism,
            max_infra_retries=max_infra_retries,
            launch_batch=launch_batch,
        )
        self.stats: EngineStats = self._tracker.stats

    # -- lifecycle ------------------------------------------------------------------

    def start(self, *, background: bool = True) -> None:
        """Recover every RUNNING run, start the executor, relaunch LAUNCHED tries.

        With `background=False` no thread is started: the caller drives `step()` or
        `run_until_idle()` (deterministic tests).
        """
        if self._started:
            raise RuntimeError("the engine is already started")
        self._stopping.clear()
        self.error = None
        self._started = True
        # Requests made while no engine ran come first: a cancelled run's LAUNCHED tries
        # must not be launched again by the recovery below.
        self._tracker.apply_requests(self._clock())
        # An executor that finds for itself which LAUNCHED tries lack a pod does so when it
        # starts; it is handed relaunches only after a loop error, to look again then.
        relaunch = self._tracker.recover_all(
            self._clock(), orders=not self._executor.relaunches_itself
        )
        self._executor.start(self)
        hand_out(self._executor, relaunch)
        self._inbox.request_queued_check()
        self.listener = self._store.listen_for_requests(self._notified)
        if background:
            self._thread = threading.Thread(target=self._loop, name="kubedag-engine", daemon=True)
            self._thread.start()
        log.info("engine started with %d running runs", len(self._tracker.runs))

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop launching at once, then stop the executor; running work is left alone."""
        self._stopping.set()
        self._inbox.notify()
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("engine loop did not stop within %.1fs", timeout)
            self._thread = None
        self._executor.stop()
        self._started = False
        self._tracker.forget_all()
        log.info("engine stopped")

    @property
    def running(self) -> bool:
        """Started, and (when in the background) its loop has not given up."""
        if not self._started:
            return False
        return self._thread is None or self._thread.is_alive()

    def wake(self, run_ids: Iterable[int] | None = None) -> None:
        """Requests wait in the store (runs queued by the scheduler or a trigger): act now."""
        self._inbox.request_queued_check(run_ids)

    def requests_pending(self) -> None:
        """An operator's request was queued: apply it now rather than at the next poll."""
        self._inbox.request_actions()

    def _notified(self, what: frozenset[str]) -> None:
        # Only what the notification says waits: a trigger's wake-up does not also read
        # the requests, nor a cancel's the queued runs.
        if RUNS in what:
            self._inbox.request_queued_check()
        if REQUESTS in what:
            self._inbox.request_actions()

    # -- the UpdateSink -------------------------------------------------------------

    def apply(
        self, updates: Sequence[TaskUpdate], *, cursor: CursorUpdate | None = None
    ) -> list[int]:
        """Commit the executor's updates and cursor in one transaction; wake the loop."""
        if not self._started:
            raise EngineStoppedError("the engine is stopped; the updates were not stored")
        with self._store.transaction() as uow:
            records = commit_updates(uow, updates, cursor=cursor, now=self._clock())
        self._inbox.put_changes(records)
        if self._on_tries_finished is not None:
            finished = [record for record in records if record.state.finished]
            if finished:
                self._on_tries_finished(finished)
        return [record.id for record in records]

    def relaunch_orders(self, task_instance_ids: Sequence[int]) -> list[LaunchOrder]:
        """The orders of those tries still LAUNCHED, for the executor to create their pods.

        Called from the executor's watch threads; they share a graph cache of their own,
        one at a time, so the loop's cache is never touched from another thread.
        """
        with self._relaunch_lock:
            return orders_to_relaunch(
                self._store,
                task_instance_ids,
                graphs=self._relaunch_graphs,
                now=self._clock(),
                max_infra_retries=self._max_infra_retries,
            )

    # -- driving --------------------------------------------------------------------

    def step(self) -> bool:
        """One pass of the loop; True when it changed anything."""
        if not self._started:
            raise EngineStoppedError("start the engine before stepping it")
        now = self._clock()
        batch = self._inbox.take()
        progressed = False
        if batch.recover_all:
            hand_out(self._executor, self._tracker.recover_all(now))
            progressed = True
        for run_id in batch.recover:
            self._tracker.recover(run_id, now=now)
            progressed = True
        poll_due = time.monotonic() - self._last_poll >= self._poll_seconds
        if batch.check_requests or poll_due:
            progressed = self._tracker.apply_requests(now) or progressed
        if batch.check_queued or poll_due:
            self._last_poll = time.monotonic()
            progressed = self._tracker.start_queued(now, woken=batch.woken) or progressed
        if batch.changes:
            self._tracker.advance(batch.changes, now=now)
            progressed = True
        return self._tracker.launch(now) or progressed

    def run_until_idle(self, *, timeout: float = 60.0) -> None:
        """Step until no run is active; for tests with the engine started unthreaded."""
        if self._thread is not None:
            raise RuntimeError("run_until_idle drives an engine started with background=False")
        deadline = time.monotonic() + timeout
        while True:
            if self.step():
                continue
            if not self._tracker.runs and self._inbox.empty():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._tracker.runs)} runs still active after {timeout}s")
            self._idle_wait(limit=remaining)

    def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                progressed = self.step()
            except Exception as error:
                failures += 1
                log.exception(
                    "engine step failed (%d in a row); rebuilding from the store", failures
                )
                if failures >= MAX_LOOP_FAILURES:
                    self.error = error
                    log.error("engine loop gave up after %d failures in a row", failures)
                    return
                self._tracker.forget_all()
                self._inbox.request_recover_all()
                self._stopping.wait(FAILURE_BACKOFF.delay(failures))
                continue
            failures = 0
            if not progressed:
                self._idle_wait(limit=self._poll_seconds)

    def _idle_wait(self, *, limit: float) -> None:
        # Until the next poll is due, counted from the last one: a wait of a whole
        # interval from now would let the poll drift to twice its interval.
        until_poll = self._last_poll + self._poll_seconds - time.monotonic()
        timeout = min(limit, max(0.0, until_poll))
        next_due = self._tracker.next_due()
        if next_due is not None:
            timeout = min(timeout, max(0.0, (next_due - self._clock()).total_seconds()))
        self._inbox.wait(timeout, stopping=self._stopping)
