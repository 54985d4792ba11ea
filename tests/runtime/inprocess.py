"""An executor that runs tries as Python callables in a thread pool, for the engine's tests
and benchmarks (the controller itself launches only pods).

It proves the engine end to end without Kubernetes, so it must behave like the real
executor where the engine can tell the difference:

- Work outlives the engine. `stop()` stops reporting, not the work: a try finishing
  while no engine listens keeps its outcome, and the next `start(sink)` reports it, as
  a restarted Kubernetes watch would find the finished pod.
- Launching is idempotent by pod name. A relaunch of a known pod adopts it instead of
  running the behaviour again, as an AlreadyExists answer would; so counting the
  behaviour's calls counts real launches.
- Outcomes arrive through the sink as RUNNING, then SUCCEEDED or FAILED, one `apply`
  call each, from worker threads.
- A cancelled try's pod is gone: its behaviour may still return, but nothing more is
  reported for it, as nothing would be for a deleted pod.

A behaviour decides each try's outcome from its LaunchOrder (task name, item, try,
rendered command); raising an exception fails the try as a task failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.base.states import FailureKind, TaskState
from controller.engine.seam import LaunchOrder, PodStop, TaskUpdate, UpdateSink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How one try ends; build it with `succeeded` or `failed`."""

    state: TaskState
    result: str | None = None
    failure_kind: FailureKind | None = None
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None

    @classmethod
    def succeeded(cls, result: str | None = None) -> Outcome:
        return cls(TaskState.SUCCEEDED, result=result, exit_code=0)

    @classmethod
    def failed(
        cls,
        *,
        kind: FailureKind = FailureKind.TASK,
        reason: str = "Error",
        message: str | None = None,
        exit_code: int | None = 1,
    ) -> Outcome:
        code = exit_code if kind is FailureKind.TASK else None
        return cls(
            TaskState.FAILED, failure_kind=kind, reason=reason, message=message, exit_code=code
        )


Behaviour = Callable[[LaunchOrder], Outcome]


class InProcessExecutor:
    relaunches_itself = False

    def __init__(
        self,
        behaviour: Behaviour,
        *,
        workers: int = 8,
        node: str = "in-process",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._behaviour = behaviour
        self._clock = clock
        self._node = node
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kubedag-try")
        self._lock = threading.Lock()
        self._sink: UpdateSink | None = None
        self._known: set[str] = set()
        self._unreported: dict[int, list[TaskUpdate]] = {}
        self._cancelled_ids: set[int] = set()
        self.launches = 0
        """Behaviour calls so far: pods actually created."""
        self.cancelled: list[PodStop] = []
        """Every stop asked for, in order."""

    def start(self, sink: UpdateSink) -> None:
        with self._lock:
            self._sink = sink
            backlog = list(self._unreported.values())
            self._unreported.clear()
        for updates in backlog:
            self._report(updates)

    def launch(self, orders: Sequence[LaunchOrder]) -> None:
        with self._lock:
            fresh = [order for order in orders if order.pod_name not in self._known]
            self._known.update(order.pod_name for order in fresh)
            self.launches += len(fresh)
        for order in fresh:
            self._pool.submit(self._run, order)

    def cancel(self, stops: Sequence[PodStop]) -> None:
        with self._lock:
            self.cancelled.extend(stops)
            self._cancelled_ids.update(stop.task_instance_id for stop in stops)

    def stop(self) -> None:
        with self._lock:
            self._sink = None

    def close(self) -> None:
        """Wait for running tries and release the threads (not part of the Executor seam)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, order: LaunchOrder) -> None:
        started = self._clock()
        self._report(
            [
                TaskUpdate(
                    order.task_instance_id, TaskState.RUNNING, node=self._node, started_at=started
                )
            ]
        )
        try:
            outcome = self._behaviour(order)
        except Exception as error:
            outcome = Outcome.failed(reason=type(error).__name__, message=str(error))
        self._report(
            [
                TaskUpdate(
                    order.task_instance_id,
                    outcome.state,
                    failure_kind=outcome.failure_kind,
                    reason=outcome.reason,
                    message=outcome.message,
                    exit_code=outcome.exit_code,
                    result=outcome.result,
                    node=self._node,
                    started_at=started,
                    finished_at=self._clock(),
                )
            ]
        )

    def _report(self, updates: list[TaskUpdate]) -> None:
        """Deliver to the sink, or keep the outcome for the next engine, as a pod would."""
        key = updates[0].task_instance_id
        with self._lock:
            if key in self._cancelled_ids:
                return
            sink = self._sink
            if sink is None:
                self._unreported.setdefault(key, []).extend(updates)
                return
        try:
            sink.apply(updates)
        except Exception:
            log.warning("sink refused an update; keeping it for the next start", exc_info=True)
            with self._lock:
                self._unreported.setdefault(key, []).extend(updates)
