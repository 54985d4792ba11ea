"""maxActiveTasks, the global parallelism cap, retry times, and maxActiveRuns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.engine.admission import admit, runs_to_start
from controller.engine.records import NewTry
from tests.engine.support import T0


def _tries(*delays: float | None) -> list[NewTry]:
    return [
        NewTry(
            "t",
            index,
            1,
            None,
            None if delay is None else T0 + timedelta(seconds=delay),
        )
        for index, delay in enumerate(delays)
    ]


def test_max_active_tasks_counts_what_is_already_active() -> None:
    pending = _tries(None, None, None, None)
    chosen = admit(pending, now=T0, max_active_tasks=3, active_tasks=1, free_slots=100)
    assert [t.item_index for t in chosen.launch] == [0, 1]


def test_the_global_cap_limits_below_max_active_tasks() -> None:
    pending = _tries(None, None, None)
    chosen = admit(pending, now=T0, max_active_tasks=16, active_tasks=0, free_slots=1)
    assert [t.item_index for t in chosen.launch] == [0]


def test_no_room_launches_nothing() -> None:
    pending = _tries(None)
    full = admit(pending, now=T0, max_active_tasks=2, active_tasks=5, free_slots=10)
    assert full.launch == []
    no_slots = admit(pending, now=T0, max_active_tasks=2, active_tasks=0, free_slots=0)
    assert no_slots.launch == []


def test_a_try_waiting_for_its_retry_time_does_not_block_those_behind_it() -> None:
    pending = _tries(60, None, -1, 30)
    chosen = admit(pending, now=T0, max_active_tasks=10, active_tasks=0, free_slots=10)
    assert [t.item_index for t in chosen.launch] == [1, 2]
    assert chosen.next_due == T0 + timedelta(seconds=30)


def test_a_try_is_due_exactly_at_its_retry_time() -> None:
    chosen = admit(_tries(0), now=T0, max_active_tasks=1, active_tasks=0, free_slots=1)
    assert len(chosen.launch) == 1
    assert chosen.next_due is None


@dataclass(frozen=True)
class _Run:
    run_id: str
    logical_date: datetime
    max_active_runs: int | None = None


def test_max_active_runs_starts_the_oldest_queued_runs_first() -> None:
    queued = [_Run(f"r{day}", T0 + timedelta(days=day)) for day in (3, 1, 2)]
    started = runs_to_start(queued, running=1, max_active_runs=3)
    assert [run.run_id for run in started] == ["r1", "r2"]


def test_max_active_runs_reached_starts_nothing() -> None:
    queued = [_Run("r1", T0)]
    assert runs_to_start(queued, running=2, max_active_runs=1) == []


def test_a_backfill_cap_holds_its_runs_back_but_not_a_newer_run_without_one() -> None:
    queued = [
        _Run("b1", T0, max_active_runs=1),
        _Run("b2", T0 + timedelta(days=1), max_active_runs=1),
        _Run("manual", T0 + timedelta(days=2)),
    ]
    started = runs_to_start(queued, running=0, max_active_runs=3)
    assert [run.run_id for run in started] == ["b1", "manual"]
