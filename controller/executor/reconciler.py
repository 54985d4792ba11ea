"""One path from "what the pods say" to "what the database says", for events and for lists.

Airflow's executor adopts orphaned pods in a separate pass with its own matching rules,
and that is where its crashes lose or duplicate work. Here a pod seen in a watch event
and a pod seen in a full list go through the same function, :func:`pod_update`, and the
same door, ``UpdateSink.apply``; a transition not allowed from the row's state (a
replayed event, a list older than the watch) is dropped by the sink, so applying the
same observation twice is harmless.

The full pass (at start, after a 410, and periodically) also looks at what the pods do
*not* say, reading the rows *before* listing the pods, so a row read as RUNNING whose pod
is missing from the later list really has lost its pod:
- a LAUNCHED row with no pod: its create never reached the API (a crash between the
  engine's write and the request), so it is launched again under the same name; if the
  create did land after all, the API answers AlreadyExists and the pod is adopted. Rows
  whose create is in flight in this process are left alone.
- a RUNNING row with no pod: the pod was deleted with its finalizer forcibly removed, or
  its node vanished; the try fails (INFRA if the main container never started, else TASK)
  and goes through the planner's retries.
- a finished row whose pod is still there: the pod goes to cleanup (logs, finalizer, policy).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from controller.base.states import FailureKind, TaskState
from controller.engine.seam import CursorUpdate, TaskUpdate, UpdateSink
from controller.executor.cleanup import PodCleaner
from controller.executor.observer import NO_OBSERVER, ExecutorObserver
from controller.executor.outcome import OutcomePhase, classify
from controller.executor.watchstream import list_pods
from controller.store import Store, TaskInstanceRecord

log = logging.getLogger(__name__)

WATCHED_STATES = (TaskState.LAUNCHED, TaskState.RUNNING)
# Rows the full pass reads at once; far above any sane parallelism.
ROW_LIMIT = 100_000

_UPDATE_STATES = {
    OutcomePhase.RUNNING: TaskState.RUNNING,
    OutcomePhase.SUCCEEDED: TaskState.SUCCEEDED,
    OutcomePhase.FAILED: TaskState.FAILED,
}


@dataclass(frozen=True)
class Observation:
    """A pod as seen in an event or a list; ``deleted`` for a DELETED event."""

    pod: Mapping[str, Any]
    deleted: bool = False

    @property
    def name(self) -> str:
        return str((self.pod.get("metadata") or {}).get("name") or "")


def pod_update(
    pod: Mapping[str, Any],
    record: TaskInstanceRecord,
    *,
    now: datetime,
    unschedulable_timeout: float,
    deleted: bool = False,
    pending_timeout: float | None = None,
) -> TaskUpdate | None:
    """The transition ``pod`` asks of its row, or None (still pending, or nothing new)."""
    if record.state.finished:
        return None
    outcome = classify(
        pod,
        now=now,
        unschedulable_timeout=unschedulable_timeout,
        deleted=deleted,
        pending_timeout=pending_timeout,
    )
    state = _UPDATE_STATES.get(outcome.phase)
    if state is None or (state is TaskState.RUNNING and record.state is TaskState.RUNNING):
        return None
    return TaskUpdate(
        task_instance_id=record.id,
        state=state,
        failure_kind=outcome.kind,
        reason=outcome.reason,
        message=outcome.message,
        exit_code=outcome.exit_code,
        result=outcome.result,
        node=outcome.node,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at
        or (now if state in (TaskState.SUCCEEDED, TaskState.FAILED) else None),
    )


def lost_pod_update(record: TaskInstanceRecord, *, now: datetime) -> TaskUpdate:
    """A RUNNING row whose pod is gone: the try failed, and nobody knows its result."""
    started = record.started_at is not None
    return TaskUpdate(
        task_instance_id=record.id,
        state=TaskState.FAILED,
        failure_kind=FailureKind.TASK if started else FailureKind.INFRA,
        reason="PodLost",
        message="the pod disappeared before its result was recorded (deleted with its "
        "finalizer removed, or its node was lost)",
        node=record.node,
        finished_at=now,
    )


class Reconciler:
    """Applies observations of the pods in ``namespace`` to the store, through ``sink``."""

    def __init__(
        self,
        api: client.ApiClient,
        store: Store,
        sink: UpdateSink,
        *,
        namespace: str,
        label_selector: str,
        launch_namespace: str,
        unschedulable_timeout: float,
        pending_timeout: float | None = None,
        cleaner: PodCleaner,
        relaunch: Callable[[Sequence[TaskInstanceRecord]], None],
        in_flight: Callable[[], Collection[str]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: ExecutorObserver = NO_OBSERVER,
    ) -> None:
        self._api = api
        self._store = store
        self._sink = sink
        self.namespace = namespace
        self._selector = label_selector
        self._launch_namespace = launch_namespace
        self._unschedulable_timeout = unschedulable_timeout
        self._pending_timeout = pending_timeout
        self._cleaner = cleaner
        self._relaunch = relaunch
        self._in_flight = in_flight
        self._clock = clock
        self._observer = observer
        self.passes = 0
        self.relaunched = 0
        self.lost = 0

    def apply(self, observations: Sequence[Observation], *, cursor: str | None) -> list[int]:
        """Commit what ``observations`` say together with ``cursor``; then clean up.

        Returns the ids of the rows that changed.
        """
        now = self._clock()
        records = self._records([o.name for o in observations])
        latest: dict[int, TaskUpdate] = {}
        for observation in observations:
            record = records.get(observation.name)
            if record is None:
                continue
            update = pod_update(
                observation.pod,
                record,
                now=now,
                unschedulable_timeout=self._unschedulable_timeout,
                deleted=observation.deleted,
                pending_timeout=self._pending_timeout,
            )
            if update is not None:
                # Later events of the same pod supersede earlier ones in the batch.
                latest[record.id] = update
        position = None if cursor is None else CursorUpdate(self.namespace, cursor)
        changed = self._sink.apply(list(latest.values()), cursor=position)
        self._clean_finished(observations, records, latest, set(changed))
        return changed

    def full_pass(self, *, resume: bool) -> str:
        """List the pods and compare with the rows; returns the list's resourceVersion.

        With ``resume`` the list's resourceVersion is committed as the watch cursor with
        the updates (after a 410: the watch resumes from the list).
        """
        self.passes += 1
        rows = self._active_rows()
        pods, version = list_pods(
            self._api,
            namespace=self.namespace,
            label_selector=self._selector,
            observer=self._observer,
        )
        present = {str(pod["metadata"]["name"]) for pod in pods}
        self.apply([Observation(pod) for pod in pods], cursor=version if resume else None)
        self._repair_missing(rows, present)
        return version

    def _active_rows(self) -> list[TaskInstanceRecord]:
        with self._store.transaction() as uow:
            rows = uow.list_task_instances_in_states(WATCHED_STATES, limit=ROW_LIMIT)
        return [
            row
            for row in rows
            if row.pod_name and (row.namespace or self._launch_namespace) == self.namespace
        ]

    def _repair_missing(self, rows: Sequence[TaskInstanceRecord], present: set[str]) -> None:
        missing = [row for row in rows if row.pod_name not in present]
        if not missing:
            return
        in_flight = set(self._in_flight())
        relaunch = [
            row
            for row in missing
            if row.state is TaskState.LAUNCHED and row.pod_name not in in_flight
        ]
        now = self._clock()
        lost = [lost_pod_update(row, now=now) for row in missing if row.state is TaskState.RUNNING]
        if lost:
            changed = self._sink.apply(lost)
            self.lost += len(changed)
            for row in missing:
                if row.id in changed:
                    log.warning(
                        "the pod of a running task is gone; the try failed",
                        extra=_where(row),
                    )
        if relaunch:
            self.relaunched += len(relaunch)
            for row in relaunch:
                log.info("launching again a pod that was never created", extra=_where(row))
            self._relaunch(relaunch)

    def _records(self, names: Sequence[str]) -> dict[str, TaskInstanceRecord]:
        # One query for the whole batch: a burst of events names hundreds of pods, and a
        # query per pod was the watch thread's largest cost, paid on the cores the API
        # server needs.
        wanted = {name for name in names if name}
        if not wanted:
            return {}
        with self._store.transaction() as uow:
            records = uow.find_task_instances_by_pods(wanted)
        return {record.pod_name: record for record in records if record.pod_name}

    def _clean_finished(
        self,
        observations: Sequence[Observation],
        records: Mapping[str, TaskInstanceRecord],
        updates: Mapping[int, TaskUpdate],
        changed: set[int],
    ) -> None:
        for observation in observations:
            record = records.get(observation.name)
            if record is None or observation.deleted:
                continue
            update = updates.get(record.id)
            if update is not None and record.id in changed:
                record = dataclasses.replace(record, state=update.state)
            if record.state.finished:
                self._cleaner.submit(observation.pod, record)


def _where(row: TaskInstanceRecord) -> dict[str, Any]:
    return {
        "dag": row.dag_name,
        "run": row.run_id,
        "task": row.task_name,
        "item": row.item_index,
        "try": row.try_number,
        "pod": row.pod_name,
    }
