"""Which tries hold a launch slot: the counts maxActiveTasks and parallelism are checked on.

Counting by try id rather than by a number up and down makes every event idempotent: a
try released twice (a replayed event, a run rebuilt from rows that already show it
finished) is released once, and a rebuilt run re-adds only what its rows say is active.
"""

from __future__ import annotations

from collections import defaultdict


class ActiveSlots:
    def __init__(self) -> None:
        self._owners: dict[int, tuple[str, int]] = {}  # try id -> (dag, run id)
        self._per_dag: defaultdict[str, int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self._owners)

    def of_dag(self, dag_name: str) -> int:
        return self._per_dag[dag_name]

    def hold(self, ti_id: int, *, dag_name: str, run_id: int) -> None:
        if ti_id not in self._owners:
            self._owners[ti_id] = (dag_name, run_id)
            self._per_dag[dag_name] += 1

    def release(self, ti_id: int) -> None:
        owner = self._owners.pop(ti_id, None)
        if owner is not None:
            self._per_dag[owner[0]] -= 1

    def release_run(self, run_id: int) -> None:
        for ti_id in [ti for ti, (_, owner) in self._owners.items() if owner == run_id]:
            self.release(ti_id)

    def clear(self) -> None:
        self._owners.clear()
        self._per_dag.clear()
