"""Following the event log on the leader: notifications, SLA misses and per-DAG run metrics.

The engine already writes every outcome to the event log in the transaction that made
it, so notifying needs no hook into the engine: a thread of its own reads new events
every few seconds and hands the ones a DAG's route asks for to a small pool of senders.
A receiver that hangs or fails costs a sender thread its bounded retries, never the
engine a millisecond. SLA misses are found here too (a run still queued or running
longer than its route's `sla` after it was queued) and written as a `run-sla-missed`
event, once per run, which the same loop then sends.

The follower starts at the newest event when its controller starts leading: events of
a leadership handover or of downtime are not notified (they stay in `kubedag events`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from controller.base.states import DagRunState
from controller.notifications.delivery import DeliveryError, deliver
from controller.notifications.messages import EVENT_NAMES, notification
from controller.notifications.settings import NotificationSettings
from controller.store import DagRunRecord, EventRecord, Store, UnitOfWork

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
EVENT_BATCH = 500
SENDERS = 4
SLA_EVENT = "run-sla-missed"
RUN_ENDS = {"run-succeeded", "run-failed", "run-cancelled"}


class RunMetrics(Protocol):
    def run_finished(self, run: DagRunRecord) -> None: ...


Deliver = Callable[[str, dict[str, Any]], None]


class NotificationFollower:
    """Reads the event log from where it starts; `start`, then `stop`."""

    def __init__(
        self,
        store: Store,
        settings: NotificationSettings,
        *,
        metrics: RunMetrics | None = None,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        send: Deliver | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        self._clock = clock
        self._send = send or self._deliver
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._senders: ThreadPoolExecutor | None = None
        self._cursor = 0
        self._flagged: set[int] = set()
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        with self._store.transaction() as uow:
            self._cursor = uow.last_event_id()
        self._stopping.clear()
        self._senders = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="notify")
        self._thread = threading.Thread(target=self._loop, name="kubedag-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self._poll_seconds * 2 + 5)
            self._thread = None
        if self._senders is not None:
            # Deliveries in flight finish their bounded retries on their own threads.
            self._senders.shutdown(wait=False, cancel_futures=True)
            self._senders = None

    def poll(self) -> int:
        """One pass: flag SLA misses, then handle the new events; how many were handled."""
        self._flag_sla_misses()
        with self._store.transaction() as uow:
            events = uow.list_events(after_id=self._cursor, limit=EVENT_BATCH)
            wanted = [event for event in events if event.kind in EVENT_NAMES]
            runs = {
                run_id: run
                for run_id in {event.run_id for event in wanted if event.run_id is not None}
                if (run := uow.get_run(run_id)) is not None
            }
        for event in wanted:
            run = runs.get(event.run_id) if event.run_id is not None else None
            if event.kind in RUN_ENDS and run is not None and self._metrics is not None:
                self._metrics.run_finished(run)
            self._notify(event, run)
        if events:
            self._cursor = events[-1].id
        return len(events)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.poll() == EVENT_BATCH:
                    continue
            except Exception:
                log.exception("reading the event log for notifications failed; trying again")
            self._stopping.wait(self._poll_seconds)

    def _notify(self, event: EventRecord, run: DagRunRecord | None) -> None:
        route = self._settings.route(event.dag_name or "")
        if route is None or EVENT_NAMES[event.kind] not in route.events:
            return
        body = notification(event, run)
        for receiver in route.receivers:
            senders = self._senders
            if senders is None:
                self._send(receiver, body)
            else:
                senders.submit(self._send, receiver, body)

    def _deliver(self, receiver: str, body: dict[str, Any]) -> None:
        where = {"dag": body["dag"], "receiver": receiver, "event": body["event"]}
        try:
            attempts = deliver(
                self._settings.receivers[receiver],
                body,
                timeout=self._settings.timeout_seconds,
            )
        except DeliveryError as error:
            self.failed += 1
            log.warning("notification to %s not delivered: %s", receiver, error, extra=where)
            return
        self.sent += 1
        log.info("notified %s after %d attempts", receiver, attempts, extra=where)

    def _flag_sla_misses(self) -> None:
        routes = [self._settings.default, *self._settings.dags.values()]
        if not any(route is not None and route.sla_seconds for route in routes):
            return
        now = self._clock()
        with self._store.transaction() as uow:
            active = uow.list_runs(states=(DagRunState.QUEUED, DagRunState.RUNNING), limit=100_000)
            for run in self._overdue(active, now):
                self._flagged.add(run.id)
                if uow.list_events(run_id=run.id, kind=SLA_EVENT, limit=1):
                    continue
                _append_sla_miss(uow, run, now)

    def _overdue(self, runs: Sequence[DagRunRecord], now: datetime) -> list[DagRunRecord]:
        overdue = []
        for run in runs:
            route = self._settings.route(run.dag_name)
            if route is None or route.sla_seconds is None or run.id in self._flagged:
                continue
            if now - run.created_at > timedelta(seconds=route.sla_seconds):
                overdue.append(run)
        return overdue


def _append_sla_miss(uow: UnitOfWork, run: DagRunRecord, now: datetime) -> None:
    waited = int((now - run.created_at).total_seconds())
    uow.append_event(
        kind=SLA_EVENT,
        message=f"run {run.id} of {run.dag_name} is still {run.state.value} {waited}s after "
        "it was queued",
        dag_name=run.dag_name,
        run_id=run.id,
        at=now,
    )
