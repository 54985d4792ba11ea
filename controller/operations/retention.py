"""Retention: delete runs, their task rows, events and stored logs once they are old.

Only finished runs go (succeeded, failed, cancelled), judged by when they finished, so a
run still going, queued or retried is never touched however old its logical date. The
work is done in small batches (see `RetentionQueries`), each its own short transaction,
and a run's stored logs are deleted right after the batch that deleted its rows
commits: a crash in between leaves logs without rows (deleted by nothing later, but
harmless), never rows whose logs are gone.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from controller.logstore import LogStore
from controller.store import Store

log = logging.getLogger(__name__)

RUNS_PER_BATCH = 100
TASK_ROWS_PER_BATCH = 10_000
EVENTS_PER_BATCH = 5_000
MAX_BATCHES = 100_000
"""A bound on one clean's loop; far above what a database holds between two cleans."""


@dataclass
class Cleaned:
    cutoff: datetime
    runs: int = 0
    task_instances: int = 0
    events: int = 0
    requests: int = 0
    logs: int = 0
    run_ids: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.runs} runs, {self.task_instances} task instances, {self.events} events, "
            f"{self.requests} requests and the stored logs of {self.logs} runs, finished "
            f"before {self.cutoff.strftime('%Y-%m-%d %H:%M:%SZ')}"
        )


def clean(
    store: Store,
    log_store: LogStore | None,
    *,
    older_than: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Cleaned:
    """Delete (or, with `dry_run`, count) what finished before now minus `older_than`."""
    if older_than <= timedelta(0):
        raise ValueError("older than must be a positive duration")
    cutoff = (now or datetime.now(UTC)) - older_than
    cleaned = Cleaned(cutoff)
    if dry_run:
        with store.transaction() as uow:
            would = uow.count_old_history(cutoff)
        cleaned.runs, cleaned.run_ids = len(would.runs), would.runs
        cleaned.task_instances, cleaned.events = would.task_instances, would.events
        cleaned.requests = would.requests
        return cleaned
    for _ in range(MAX_BATCHES):
        with store.transaction() as uow:
            batch = uow.delete_old_runs(
                cutoff, max_runs=RUNS_PER_BATCH, max_rows=TASK_ROWS_PER_BATCH
            )
        if not batch.runs:
            break
        cleaned.runs += len(batch.runs)
        cleaned.run_ids.extend(batch.runs)
        cleaned.task_instances += batch.task_instances
        cleaned.events += batch.events
        cleaned.requests += batch.requests
        if log_store is not None:
            cleaned.logs += sum(log_store.delete_run(run_id) for run_id in batch.runs)
    for _ in range(MAX_BATCHES):
        with store.transaction() as uow:
            deleted = uow.delete_old_events(cutoff, limit=EVENTS_PER_BATCH)
        cleaned.events += deleted
        if deleted < EVENTS_PER_BATCH:
            break
    log.info("retention deleted %s", cleaned)
    return cleaned


class RetentionSchedule:
    """Runs `clean` every `interval_seconds` on a thread of its own, while started.

    The leader runs it, so two replicas do not clean at once; a clean that fails (the
    database away) is logged and tried again at the next interval.
    """

    def __init__(
        self,
        store: Store,
        log_store: LogStore,
        *,
        older_than: timedelta,
        interval_seconds: float,
        first_delay_seconds: float = 60.0,
    ) -> None:
        self._store = store
        self._log_store = log_store
        self._older_than = older_than
        self._interval = interval_seconds
        self._first_delay = first_delay_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="kubedag-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _loop(self) -> None:
        delay = self._first_delay
        while not self._stopping.wait(delay):
            delay = self._interval
            try:
                clean(self._store, self._log_store, older_than=self._older_than)
            except Exception:
                log.exception("retention failed; trying again in %.0fs", self._interval)
