"""The engine's in-memory queue of PENDING tries, ordered the way admission wants them.

The store can answer "which tries are pending" (`list_pending`), but asking it on every
pod event rereads the same waiting rows again and again: with thousands of ready tries
behind a maxActiveTasks of 16, every completion would scan them all, and a run would
cost O(tries^2). The engine writes every PENDING row itself (from planner decisions, or
reads them when it recovers a run), so it can keep them here and take the next ones in
O(taken).

Order is admission's: per DAG, the oldest run (logical date, then id) first, and inside
a run the order the rows were created; each run gives at most the room its cap leaves.
A try waiting for its retry time sits in a heap by time and joins its run's queue once
due, so it never holds back the tries behind it.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from controller.base.tries import TryKey


@dataclass(frozen=True, slots=True)
class PendingTry:
    """One PENDING TaskInstance row the engine may launch."""

    ti_id: int
    key: TryKey
    dag_name: str
    run_order: tuple[datetime, int]
    """(logical date, run id): older runs launch first."""
    not_before: datetime | None


@dataclass
class _DagQueue:
    runs: dict[tuple[datetime, int], deque[PendingTry]] = field(default_factory=dict)


class PendingQueue:
    def __init__(self) -> None:
        self._dags: dict[str, _DagQueue] = {}
        self._timers: list[tuple[datetime, int, PendingTry]] = []
        self._live: dict[int, PendingTry] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, ti_id: int) -> bool:
        return ti_id in self._live

    def add(self, entry: PendingTry, *, now: datetime) -> None:
        """Queue `entry` (again); a try already queued is left where it is."""
        if entry.ti_id in self._live:
            return
        self._live[entry.ti_id] = entry
        if entry.not_before is not None and entry.not_before > now:
            heapq.heappush(self._timers, (entry.not_before, entry.ti_id, entry))
        else:
            self._enqueue(entry)

    def promote(self, now: datetime) -> None:
        """Move the tries whose retry time has come into their run's queue."""
        while self._timers and self._timers[0][0] <= now:
            _, ti_id, entry = heapq.heappop(self._timers)
            if self._live.get(ti_id) is entry:
                self._enqueue(entry)

    def next_due(self) -> datetime | None:
        """The earliest retry time still ahead, to know how long the engine may sleep."""
        while self._timers and self._live.get(self._timers[0][1]) is not self._timers[0][2]:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def dags_with_due(self) -> list[str]:
        return [name for name, queue in self._dags.items() if queue.runs]

    def take(
        self, dag_name: str, limit: int, *, run_room: Callable[[int], int]
    ) -> list[PendingTry]:
        """Up to `limit` due tries of one DAG, oldest run first, at most `run_room(run id)`
        of each run; they leave the queue."""
        queue = self._dags.get(dag_name)
        taken: list[PendingTry] = []
        if queue is None:
            return taken
        for order in sorted(queue.runs):
            entries = queue.runs[order]
            run_limit = len(taken) + max(0, run_room(order[1]))
            while entries and len(taken) < min(limit, run_limit):
                entry = entries.popleft()
                if self._live.get(entry.ti_id) is entry:
                    del self._live[entry.ti_id]
                    taken.append(entry)
            if not entries:
                del queue.runs[order]
            if len(taken) >= limit:
                break
        if not queue.runs:
            del self._dags[dag_name]
        return taken

    def drop_run(self, run_id: int) -> None:
        """Forget every try of a run (it finished, or is being recovered from its rows)."""
        for ti_id in [ti_id for ti_id, entry in self._live.items() if entry.key.run_id == run_id]:
            del self._live[ti_id]
        for name in list(self._dags):
            runs = self._dags[name].runs
            for order in [order for order in runs if order[1] == run_id]:
                del runs[order]
            if not runs:
                del self._dags[name]

    def clear(self) -> None:
        self._dags.clear()
        self._timers.clear()
        self._live.clear()

    def _enqueue(self, entry: PendingTry) -> None:
        queue = self._dags.setdefault(entry.dag_name, _DagQueue())
        queue.runs.setdefault(entry.run_order, deque()).append(entry)
