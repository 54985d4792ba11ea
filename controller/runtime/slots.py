"""Which tries hold a launch slot: the counts maxActiveTasks (per run) and parallelism are
checked on.

Counting by try id rather than by a number up and down makes every event idempotent: a
try released twice (a replayed event, a run rebuilt from rows that already show it
finished) is released once, and a rebuilt run re-adds only what its rows say is active.
"""

from __future__ import annotations

from collections import defaultdict


class ActiveSlots:
    def __init__(self) -> None:
        self._owners: dict[int, int] = {}  # try id -> run id
        self._per_run: defaultdict[int, int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self._owners)

    def of_run(self, run_id: int) -> int:
        return self._per_run.get(run_id, 0)

    def hold(self, ti_id: int, *, run_id: int) -> None:
        if ti_id not in self._owners:
            self._owners[ti_id] = run_id
            self._per_run[run_id] += 1

    def release(self, ti_id: int) -> None:
        owner = self._owners.pop(ti_id, None)
        if owner is not None:
            self._per_run[owner] -= 1
            if not self._per_run[owner]:
                del self._per_run[owner]

    def release_run(self, run_id: int) -> None:
        for ti_id in [ti for ti, owner in self._owners.items() if owner == run_id]:
            self.release(ti_id)

    def clear(self) -> None:
        self._owners.clear()
        self._per_run.clear()
