"""What the engine's loop knows of the active runs, and the only code that changes it.

The loop thread owns one `RunTracker`: every RUNNING run's planner (`ActiveRun`), the
queue of PENDING tries waiting for their time or for room (`PendingQueue`), the tries
holding a slot under the caps (`ActiveSlots`) and each DAG's caps. Its methods are the
steps of the loop: start queued runs, rebuild runs from their rows, apply operators'
requests, feed changed rows to the planners and write their plans, and launch what is
due within the caps. Nothing here is thread-safe, and nothing needs to be: other threads
reach the loop through its `Inbox` (see `engine`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from controller.base.states import DagRunState, TaskState
from controller.engine.graph import GraphCache
from controller.engine.records import Plan
from controller.engine.seam import Executor, LaunchOrder
from controller.runtime.actions import Applied
from controller.runtime.active import ActiveRun, recover_run
from controller.runtime.applying import apply_pending
from controller.runtime.inbox import Inbox
from controller.runtime.launching import (
    build_orders,
    claim,
    hand_out,
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
from controller.runtime.updates import view_of
from controller.store import DagRunRecord, Store, TaskInstanceRecord, UnitOfWork

log = logging.getLogger("controller.runtime.engine")


@dataclass
class EngineStats:
    """Counters since the engine was built: what the benchmark and metrics read."""

    decisions: int = 0
    """Planner decisions written (new tries, finished instances, rejections, run ends)."""
    planning_seconds: float = 0.0
    """CPU time of the loop thread spent inside the planner (recover and advance)."""
    launched: int = 0


class RunTracker:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        inbox: Inbox,
        *,
        stopping: threading.Event,
        parallelism: int,
        max_infra_retries: int,
        launch_batch: int,
    ) -> None:
        self._store = store
        self._executor = executor
        self._inbox = inbox
        self._stopping = stopping
        self._parallelism = parallelism
        self._max_infra_retries = max_infra_retries
        self._launch_batch = launch_batch
        self._graphs = GraphCache()
        self.runs: dict[int, ActiveRun] = {}
        self._pending = PendingQueue()
        self._slots = ActiveSlots()
        self._limits: dict[str, DagLimits] = {}
        self.stats = EngineStats()

    def next_due(self) -> datetime | None:
        """When the earliest pending try waiting for its time becomes due."""
        return self._pending.next_due()

    def start_queued(self, now: datetime, *, woken: frozenset[int]) -> bool:
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
                self.forget_run(one.run.id)
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
        self.runs[record.id] = run
        for row in rows:
            if row.state is TaskState.PENDING:
                self._pending.add(run.pending_try(row), now=now)
            elif row.state.active:
                self._slots.hold(row.id, run_id=row.run_id)
        return run, plan

    def recover_all(self, now: datetime, *, orders: bool = True) -> list[LaunchOrder]:
        """Rebuild every RUNNING run from its rows; the LAUNCHED tries to hand out again
        (none without `orders`)."""
        self.forget_all()
        loaded: list[tuple[DagRunRecord, list[TaskInstanceRecord]]] = []
        with self._store.transaction() as uow:
            for run in uow.list_runs(states=[DagRunState.RUNNING], limit=SCAN_LIMIT):
                if run.dag_name not in self._limits:
                    self._limits[run.dag_name] = dag_limits(uow, run.dag_name, fallback=run.spec)
                loaded.append((run, uow.list_task_instances(run.id)))
        items = [self._activate(run, rows, now=now) for run, rows in loaded]
        self._write(items, now=now)
        relaunch: list[LaunchOrder] = []
        for run, rows in loaded if orders else ():
            active = self.runs.get(run.id)
            if active is not None:
                relaunch.extend(relaunch_orders(active, rows))
        return relaunch

    def recover(self, run_id: int, *, now: datetime) -> None:
        """Rebuild one run's planner from fresh rows (its planner was stale)."""
        self.forget_run(run_id)
        with self._store.transaction() as uow:
            record = uow.get_run(run_id)
            if record is None or record.state is not DagRunState.RUNNING:
                return
            self._limits[record.dag_name] = dag_limits(uow, record.dag_name, fallback=record.spec)
            rows = uow.list_task_instances(run_id)
        log.info("rebuilding run %d from its rows", run_id, extra={"run": run_id})
        self._write([self._activate(record, rows, now=now)], now=now)

    def forget_run(self, run_id: int) -> None:
        self.runs.pop(run_id, None)
        self._pending.drop_run(run_id)
        self._slots.release_run(run_id)

    def forget_all(self) -> None:
        self.runs.clear()
        self._pending.clear()
        self._slots.clear()

    # -- operators' requests --------------------------------------------------------

    def apply_requests(self, now: datetime) -> bool:
        return apply_pending(self._store, now=now, graphs=self._graphs, act=self._act_on)

    def _act_on(self, applied: Applied) -> None:
        for run_id in applied.forget | applied.rebuild:
            self.forget_run(run_id)
        for run_id in applied.rebuild:
            self._inbox.request_recover(run_id)
        if applied.stops:
            self._executor.cancel(applied.stops)
        if applied.requeued or applied.forget:
            self._inbox.request_queued_check()

    # -- plans ----------------------------------------------------------------------

    def advance(self, changes: Sequence[TaskInstanceRecord], *, now: datetime) -> None:
        by_run: defaultdict[int, list[TaskInstanceRecord]] = defaultdict(list)
        for record in changes:
            if record.state.finished:
                self._slots.release(record.id)
            by_run[record.run_id].append(record)
        items: list[tuple[ActiveRun, Plan]] = []
        for run_id, records in by_run.items():
            run = self.runs.get(run_id)
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
                self.forget_run(run.run_id)
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
                self.forget_run(run.run_id)
                self._inbox.request_recover(run.run_id)
            elif plan.run_state is not None:
                log.info(
                    "run %d of %s %s",
                    run.run_id,
                    run.dag_name,
                    plan.run_state.value,
                    extra={"dag": run.dag_name, "run": run.run_id},
                )
                self.forget_run(run.run_id)
                self._inbox.request_queued_check()

    # -- launching ------------------------------------------------------------------

    def launch(self, now: datetime) -> bool:
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
        orders, broken = build_orders(chunk, self.runs)
        claimed, stale = claim(uow, orders, broken, now=now)
        for run_id in stale:
            self.forget_run(run_id)
            self._inbox.request_recover(run_id)
        self.stats.launched += len(claimed)
        for order in claimed:
            self._slots.hold(order.task_instance_id, run_id=order.key.run_id)
        return claimed
