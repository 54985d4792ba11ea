"""The one door into the engine's loop from other threads.

Planners are not thread-safe and must not be: they are touched by the loop thread only.
Executor threads (through `apply`), the scheduler and the loop itself leave work here
under a condition variable, and the loop takes everything at once per step, so a burst
of pod events is planned as one batch (one `advance` per run, one transaction) instead
of one at a time. Waiting on the condition, not sleeping, is what makes the hop from an
upstream's success to its downstream's launch take milliseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from controller.store import TaskInstanceRecord


@dataclass(frozen=True)
class Batch:
    changes: list[TaskInstanceRecord]
    recover: frozenset[int]
    recover_all: bool
    check_queued: bool
    woken: frozenset[int]
    """Run ids named by `wake`, so the engine can say which of them must still wait."""
    check_requests: bool = False


class Inbox:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._changes: list[TaskInstanceRecord] = []
        self._recover: set[int] = set()
        self._recover_all = False
        self._check_queued = False
        self._woken: set[int] = set()
        self._check_requests = False

    def put_changes(self, records: Sequence[TaskInstanceRecord]) -> None:
        if records:
            with self._cond:
                self._changes.extend(records)
                self._cond.notify_all()

    def request_recover(self, run_id: int) -> None:
        with self._cond:
            self._recover.add(run_id)
            self._cond.notify_all()

    def request_recover_all(self) -> None:
        with self._cond:
            self._recover_all = True
            self._cond.notify_all()

    def request_queued_check(self, run_ids: Iterable[int] | None = None) -> None:
        with self._cond:
            self._check_queued = True
            self._woken.update(run_ids or ())
            self._cond.notify_all()

    def request_actions(self) -> None:
        with self._cond:
            self._check_requests = True
            self._cond.notify_all()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def take(self) -> Batch:
        with self._cond:
            batch = Batch(
                changes=self._changes,
                recover=frozenset(self._recover),
                recover_all=self._recover_all,
                check_queued=self._check_queued,
                woken=frozenset(self._woken),
                check_requests=self._check_requests,
            )
            self._changes = []
            self._recover.clear()
            self._recover_all = False
            self._check_queued = False
            self._woken.clear()
            self._check_requests = False
        return batch

    def empty(self) -> bool:
        with self._cond:
            return not self._has_work()

    def wait(self, timeout: float, *, stopping: threading.Event) -> None:
        """Sleep until work arrives, `stopping` is set, or `timeout` seconds pass."""
        with self._cond:
            if self._has_work() or stopping.is_set():
                return
            self._cond.wait(max(0.0, timeout))

    def _has_work(self) -> bool:
        return bool(
            self._changes
            or self._recover
            or self._recover_all
            or self._check_queued
            or self._check_requests
        )
