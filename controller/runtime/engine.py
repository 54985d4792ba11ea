"""The run engine: the imperative shell that turns planner decisions into rows and pods.

One thread owns every planner and the queue of pending tries; everything else talks to
it through an inbox under a condition variable. Executor threads call `apply` (the
`UpdateSink`), which commits their observations in one transaction, puts the changed
rows in the inbox and wakes the loop, so "upstream succeeded -> downstream launched" is
a few milliseconds, not a polling interval. The loop then, per step: starts queued
runs within maxActiveRuns, feeds changed rows to their runs' planners (`advance`, only
the changed rows: linear over a run), writes the plans in one transaction, and launches
due tries within maxActiveTasks and the global parallelism cap, one transaction per
batch of compare-and-sets from PENDING to LAUNCHED, each with its deterministic pod
name, before handing the batch to the executor.

Operators' requests (cancel, retry, mark; see `actions`) are applied here too, in the
loop, because the loop owns the planners they change: looked for on every poll and at
once when `requests_pending` is called (by the API in this process, or by a database
notification). Pods of tries an operator ended are stopped only after their new state
is committed; the request is answered after that, so a crash in between applies it
again, which only stops the same pods again.

Crashes: every decision is written before it is acted on, and acting on it again is
harmless. At start (and after a loop error) every RUNNING run is rebuilt from its rows
with `RunPlanner.recover`, and every LAUNCHED try is handed to the executor again as a
relaunch of the same pod name: the executor adopts a pod that exists. The engine never
creates a second try for a LAUNCHED or RUNNING row. A compare-and-set that loses means
this planner is stale (another controller, a stale view): that run is rebuilt from
fresh rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.base.backoff import Backoff
from controller.base.states import DagRunState, TaskState
from controller.engine.graph import GraphCache
from controller.engine.records import Plan
from controller.engine.retries import DEFAULT_MAX_INFRA_RETRIES
from controller.engine.seam import CursorUpdate, Executor, LaunchOrder, TaskUpdate
from controller.runtime.actions import Applied
from controller.runtime.active import ActiveRun, recover_run
from controller.runtime.applying import apply_pending
from controller.runtime.inbox import Inbox
from controller.runtime.launching import (
    build_orders,
    claim,
    hand_out,
    orders_to_relaunch,
    relaunch_orders,
    take_within_caps,
)
from controller.runtime.pending import PendingQueue, PendingTry
from controller.runtime.plans import Written, write_plans
from controller.runtime.slots import ActiveSlots
from controller.runtime.starting import (
    SCAN_LIMIT,
    DagLimits,
    Started,
    dag_limits,
    start_queued_runs,
)
from controller.runtime.updates import commit_updates, view_of
from controller.store import (
    REQUESTS,
    RUNS,
    DagRunRecord,
    RequestListener,
    Store,
    TaskInstanceRecord,
    UnitOfWork,
)

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


@dataclass
class EngineStats:
    """Counters since the engine was built: what the benchmark and metrics read."""

    decisions: int = 0
    """Planner decisions written (new tries, finished instances, rejections, run ends)."""
    planning_seconds: float = 0.0
    """CPU time of the loop thread spent inside the planner (recover and advance)."""
    launched: int = 0


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
        self._parallelism = parallelism
        self._max_infra_retries = max_infra_retries
        self._clock = clock
        self._launch_batch = launch_batch
        self._poll_seconds = poll_seconds
        self._graphs = GraphCache()
        self._relaunch_graphs = GraphCache()
        self._relaunch_lock = threading.Lock()
        self._inbox = Inbox()
        self._runs: dict[int, ActiveRun] = {}
        self._pending = PendingQueue()
        self._slots = ActiveSlots()
        self._limits: dict[str, DagLimits] = {}
        self._started = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_poll = 0.0
        self.listener: RequestListener | None = None
        """Wakes the loop when another process queues a run or a request (PostgreSQL only)."""
        self.error: BaseException | None = None
        """Why the loop gave up, after MAX_LOOP_FAILURES failures in a row."""
        self.stats = EngineStats()

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
        self._apply_requests(self._clock())
        relaunch = self._recover_all(self._clock())
        # Handed out before the executor starts: an executor that looks for itself which
        # of them lack a pod (Kubernetes) does so once it starts, so only relaunches
        # handed out later (after a loop error) ask it to look again.
        hand_out(self._executor, relaunch)
        self._executor.start(self)
        self._inbox.request_queued_check()
        self.listener = self._store.listen_for_requests(self._notified)
        if background:
            self._thread = threading.Thread(target=self._loop, name="kubedag-engine", daemon=True)
            self._thread.start()
        log.info("engine started with %d running runs", len(self._runs))

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
        self._forget_all()
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
            hand_out(self._executor, self._recover_all(now))
            progressed = True
        for run_id in batch.recover:
            self._recover(run_id, now=now)
            progressed = True
        poll_due = time.monotonic() - self._last_poll >= self._poll_seconds
        if batch.check_requests or poll_due:
            progressed = self._apply_requests(now) or progressed
        if batch.check_queued or poll_due:
            self._last_poll = time.monotonic()
            progressed = self._start_queued(now, woken=batch.woken) or progressed
        if batch.changes:
            self._advance(batch.changes, now=now)
            progressed = True
        return self._launch(now) or progressed

    def run_until_idle(self, *, timeout: float = 60.0) -> None:
        """Step until no run is active; for tests with the engine started unthreaded."""
        if self._thread is not None:
            raise RuntimeError("run_until_idle drives an engine started with background=False")
        deadline = time.monotonic() + timeout
        while True:
            if self.step():
                continue
            if not self._runs and self._inbox.empty():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._runs)} runs still active after {timeout}s")
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
                self._forget_all()
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
        next_due = self._pending.next_due()
        if next_due is not None:
            timeout = min(timeout, max(0.0, (next_due - self._clock()).total_seconds()))
        self._inbox.wait(timeout, stopping=self._stopping)

    # -- runs -----------------------------------------------------------------------

    def _start_queued(self, now: datetime, *, woken: frozenset[int]) -> bool:
        # Starting runs, writing their first tries and claiming those that may launch is
        # one transaction: the path from a trigger to its first pod commits once, and no
        # run is RUNNING without its rows.
        started: list[Started] = []
        claimed: list[LaunchOrder] = []
        try:
            with self._store.transaction() as uow:
                started, limits = start_queued_runs(uow, now=now)
                self._limits.update(limits)
                items = [
                    self._activate(
                        one.run,
                        # A retried run starts with the rows of its earlier tries.
                        uow.list_task_instances(one.run.id) if one.ran_before else [],
                        now=now,
                    )
                    for one in started
                ]
                self._absorb(write_plans(uow, items, now=now), now=now)
                if started and not self._stopping.is_set():
                    claimed = self._claim(uow, self._take_due(now, limit=self._launch_batch), now)
        except Exception:
            # Rolled back: the runs are still queued, and their planners go.
            for one in started:
                self._forget_run(one.run.id)
            raise
        for run_id in sorted(woken - {one.run.id for one in started}):
            log.info("run %d stays queued behind maxActiveRuns", run_id, extra={"run": run_id})
        for one in started:
            log.info(
                "run %d of %s started",
                one.run.id,
                one.run.dag_name,
                extra={"dag": one.run.dag_name, "run": one.run.id},
            )
        hand_out(self._executor, claimed)
        return bool(started)

    def _activate(
        self, record: DagRunRecord, rows: list[TaskInstanceRecord], *, now: datetime
    ) -> tuple[ActiveRun, Plan]:
        began = time.thread_time()
        run, plan = recover_run(
            record,
            rows,
            dag_path=self._limits[record.dag_name].path,
            graphs=self._graphs,
            now=now,
            max_infra_retries=self._max_infra_retries,
        )
        self.stats.planning_seconds += time.thread_time() - began
        self._runs[record.id] = run
        for row in rows:
            if row.state is TaskState.PENDING:
                self._pending.add(run.pending_try(row), now=now)
            elif row.state.active:
                self._slots.hold(row.id, run_id=row.run_id)
        return run, plan

    def _recover_all(self, now: datetime) -> list[LaunchOrder]:
        """Rebuild every RUNNING run from its rows; the LAUNCHED tries to hand out again."""
        self._forget_all()
        loaded: list[tuple[DagRunRecord, list[TaskInstanceRecord]]] = []
        with self._store.transaction() as uow:
            for run in uow.list_runs(states=[DagRunState.RUNNING], limit=SCAN_LIMIT):
                if run.dag_name not in self._limits:
                    self._limits[run.dag_name] = dag_limits(uow, run.dag_name, fallback=run.spec)
                loaded.append((run, uow.list_task_instances(run.id)))
        items = [self._activate(run, rows, now=now) for run, rows in loaded]
        self._write(items, now=now)
        relaunch: list[LaunchOrder] = []
        for run, rows in loaded:
            active = self._runs.get(run.id)
            if active is not None:
                relaunch.extend(relaunch_orders(active, rows))
        return relaunch

    def _recover(self, run_id: int, *, now: datetime) -> None:
        """Rebuild one run's planner from fresh rows (its planner was stale)."""
        self._forget_run(run_id)
        with self._store.transaction() as uow:
            record = uow.get_run(run_id)
            if record is None or record.state is not DagRunState.RUNNING:
                return
            self._limits[record.dag_name] = dag_limits(uow, record.dag_name, fallback=record.spec)
            rows = uow.list_task_instances(run_id)
        log.info("rebuilding run %d from its rows", run_id, extra={"run": run_id})
        self._write([self._activate(record, rows, now=now)], now=now)

    def _forget_run(self, run_id: int) -> None:
        self._runs.pop(run_id, None)
        self._pending.drop_run(run_id)
        self._slots.release_run(run_id)

    def _forget_all(self) -> None:
        self._runs.clear()
        self._pending.clear()
        self._slots.clear()

    # -- operators' requests --------------------------------------------------------

    def _apply_requests(self, now: datetime) -> bool:
        return apply_pending(self._store, now=now, graphs=self._graphs, act=self._act_on)

    def _act_on(self, applied: Applied) -> None:
        for run_id in applied.forget | applied.rebuild:
            self._forget_run(run_id)
        for run_id in applied.rebuild:
            self._inbox.request_recover(run_id)
        if applied.stops:
            self._executor.cancel(applied.stops)
        if applied.requeued or applied.forget:
            self._inbox.request_queued_check()

    # -- plans ----------------------------------------------------------------------

    def _advance(self, changes: Sequence[TaskInstanceRecord], *, now: datetime) -> None:
        by_run: defaultdict[int, list[TaskInstanceRecord]] = defaultdict(list)
        for record in changes:
            if record.state.finished:
                self._slots.release(record.id)
            by_run[record.run_id].append(record)
        items: list[tuple[ActiveRun, Plan]] = []
        for run_id, records in by_run.items():
            run = self._runs.get(run_id)
            if run is None:
                self._inbox.request_recover(run_id)
                continue
            began = time.thread_time()
            plan = run.planner.advance([view_of(r) for r in records], now=now)
            self.stats.planning_seconds += time.thread_time() - began
            items.append((run, plan))
        self._write(items, now=now)

    def _write(self, items: list[tuple[ActiveRun, Plan]], *, now: datetime) -> None:
        """Write the plans of several runs in one transaction, then act on the outcome."""
        items = [(run, plan) for run, plan in items if plan.news]
        if not items:
            return
        try:
            with self._store.transaction() as uow:
                written = write_plans(uow, items, now=now)
        except Exception:
            for run, _ in items:
                self._forget_run(run.run_id)
                self._inbox.request_recover(run.run_id)
            raise
        self._absorb(written, now=now)

    def _absorb(self, written: list[tuple[ActiveRun, Plan, Written]], *, now: datetime) -> None:
        """Act on what writing the plans found: new pending tries, stale planners, ends."""
        for run, plan, outcome in written:
            self.stats.decisions += plan.decisions
            run.remember(outcome.created)
            for record in outcome.created:
                if record.state is TaskState.PENDING:
                    self._pending.add(run.pending_try(record), now=now)
            if not outcome.consistent:
                log.warning(
                    "run %d: the store disagreed with its planner; rebuilding it",
                    run.run_id,
                    extra={"dag": run.dag_name, "run": run.run_id},
                )
                self._forget_run(run.run_id)
                self._inbox.request_recover(run.run_id)
            elif plan.run_state is not None:
                log.info(
                    "run %d of %s %s",
                    run.run_id,
                    run.dag_name,
                    plan.run_state.value,
                    extra={"dag": run.dag_name, "run": run.run_id},
                )
                self._forget_run(run.run_id)
                self._inbox.request_queued_check()

    # -- launching ------------------------------------------------------------------

    def _launch(self, now: datetime) -> bool:
        taken = self._take_due(now)
        for start in range(0, len(taken), self._launch_batch):
            chunk = taken[start : start + self._launch_batch]
            if self._stopping.is_set():
                # Still PENDING in the store: the next engine launches them.
                return bool(start)
            with self._store.transaction() as uow:
                claimed = self._claim(uow, chunk, now)
            hand_out(self._executor, claimed)
        return bool(taken)

    def _take_due(self, now: datetime, *, limit: int | None = None) -> list[PendingTry]:
        """Due tries within the caps (at most `limit`), taken from the pending queue."""
        self._pending.promote(now)
        parallelism = self._parallelism
        if limit is not None:
            parallelism = min(parallelism, len(self._slots) + limit)
        return take_within_caps(self._pending, self._slots, self._limits, parallelism=parallelism)

    def _claim(
        self, uow: UnitOfWork, chunk: Sequence[PendingTry], now: datetime
    ) -> list[LaunchOrder]:
        """Claim `chunk` in `uow`: the orders to hand out once it commits."""
        orders, broken = build_orders(chunk, self._runs)
        claimed, stale = claim(uow, orders, broken, now=now)
        for run_id in stale:
            self._forget_run(run_id)
            self._inbox.request_recover(run_id)
        self.stats.launched += len(claimed)
        for order in claimed:
            self._slots.hold(order.task_instance_id, run_id=order.key.run_id)
        return claimed
