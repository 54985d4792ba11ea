"""Trigger rules and concurrency caps, observed through whole runs on the engine."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest

from controller.base.states import DagRunState, TaskState
from controller.engine.seam import LaunchOrder
from controller.spec.model import TriggerRule
from controller.store import Store
from tests.engine.support import dag, task
from tests.runtime.inprocess import Outcome
from tests.runtime.support import (
    LOGICAL_DATE,
    Recorder,
    engine_on,
    final_states,
    queue_run,
    run_state,
    store_dag,
)


def fail_named_fail(order: LaunchOrder) -> Outcome:
    if order.task.name.startswith("fail"):
        return Outcome.failed(message="planned failure")
    return Outcome.succeeded()


@pytest.mark.parametrize(
    ("rule", "child_state"),
    [
        (TriggerRule.ALL_SUCCESS, TaskState.UPSTREAM_FAILED),
        (TriggerRule.ALL_FAILED, TaskState.SKIPPED),
        (TriggerRule.ALL_DONE, TaskState.SUCCEEDED),
        (TriggerRule.ONE_SUCCESS, TaskState.SUCCEEDED),
        (TriggerRule.ONE_FAILED, TaskState.SUCCEEDED),
        (TriggerRule.NONE_FAILED, TaskState.UPSTREAM_FAILED),
    ],
)
def test_each_trigger_rule_decides_after_one_failed_and_one_succeeded_upstream(
    store: Store, rule: TriggerRule, child_state: TaskState
) -> None:
    mixed = dag(
        task("fail-a"), task("ok-b"), task("child", "fail-a", "ok-b", rule=rule), name="mixed"
    )
    store_dag(store, mixed)
    run = queue_run(store, mixed)
    with engine_on(store, Recorder(fail_named_fail)) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert final_states(store, run.id)[("child", 0)] == child_state.value
    assert run_state(store, run.id) is DagRunState.FAILED


def test_skips_flow_through_none_failed_and_a_run_of_successes_and_skips_succeeds(
    store: Store,
) -> None:
    branching = dag(
        task("ok-a"),
        task("on-failure", "ok-a", rule=TriggerRule.ONE_FAILED),
        task("strict", "on-failure"),
        task("tolerant", "on-failure", "ok-a", rule=TriggerRule.NONE_FAILED),
        task("all-failed", "ok-a", rule=TriggerRule.ALL_FAILED),
        name="branching",
    )
    store_dag(store, branching)
    run = queue_run(store, branching)
    with engine_on(store, Recorder(fail_named_fail)) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert final_states(store, run.id) == {
        ("ok-a", 0): "succeeded",
        ("on-failure", 0): "skipped",
        ("strict", 0): "skipped",
        ("tolerant", 0): "succeeded",
        ("all-failed", 0): "skipped",
    }
    assert run_state(store, run.id) is DagRunState.SUCCEEDED


def test_a_cleanup_task_runs_after_a_failure_without_making_the_run_succeed(store: Store) -> None:
    cleanup = dag(
        task("fail-work"), task("cleanup", "fail-work", rule=TriggerRule.ALL_DONE), name="cleanup"
    )
    store_dag(store, cleanup)
    run = queue_run(store, cleanup)
    with engine_on(store, Recorder(fail_named_fail)) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert final_states(store, run.id)[("cleanup", 0)] == "succeeded"
    assert run_state(store, run.id) is DagRunState.FAILED


def slow(order: LaunchOrder) -> Outcome:
    time.sleep(0.02)
    return Outcome.succeeded()


def test_max_active_tasks_bounds_the_tries_running_at_once(store: Store) -> None:
    wide = dag(*(task(f"t{n}") for n in range(12)), task("fan", items=list(range(8))), name="wide")
    wide = type(wide)(name=wide.name, tasks=wide.tasks, max_active_tasks=3)
    store_dag(store, wide)
    run = queue_run(store, wide)
    recorder = Recorder(slow)
    with engine_on(store, recorder, workers=16) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    assert 1 < recorder.peak["wide"] <= 3
    assert len(recorder.calls) == 20


def test_max_active_tasks_is_per_run_so_two_runs_each_get_the_cap(store: Store) -> None:
    wide = dag(*(task(f"t{n}") for n in range(8)), name="per-run")
    wide = replace(wide, max_active_tasks=3, max_active_runs=2)
    store_dag(store, wide)
    runs = [
        queue_run(store, wide, logical_date=LOGICAL_DATE + timedelta(days=day)) for day in (0, 1)
    ]
    both_full = threading.Event()

    def hold_until_both_runs_are_full(order: LaunchOrder) -> Outcome:
        # Each try waits (bounded) until six run at once: three of each run, which a cap
        # counted across the DAG's runs would never allow.
        if recorder.peak_total >= 6:
            both_full.set()
        both_full.wait(5)
        return Outcome.succeeded()

    recorder = Recorder(hold_until_both_runs_are_full)
    with engine_on(store, recorder, workers=16) as engine:
        engine.wake()
        engine.run_until_idle(timeout=60)
    assert all(run_state(store, run.id) is DagRunState.SUCCEEDED for run in runs)
    assert recorder.peak_total == 6
    assert recorder.peak_of_run == {run.id: 3 for run in runs}


def test_the_global_parallelism_cap_bounds_every_dag_together(store: Store) -> None:
    runs = []
    for name in ("left", "right"):
        the_dag = dag(*(task(f"t{n}") for n in range(8)), name=name)
        store_dag(store, the_dag)
        runs.append(queue_run(store, the_dag))
    recorder = Recorder(slow)
    with engine_on(store, recorder, workers=16, parallelism=5) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert all(run_state(store, run.id) is DagRunState.SUCCEEDED for run in runs)
    assert 1 < recorder.peak_total <= 5


def test_max_active_runs_starts_queued_runs_one_at_a_time_oldest_first(store: Store) -> None:
    serial = dag(task("a"), task("b", "a"), name="serial")
    store_dag(store, serial)
    runs = [
        queue_run(store, serial, logical_date=LOGICAL_DATE + timedelta(hours=hour))
        for hour in (2, 0, 1)
    ]
    recorder = Recorder(slow)
    with engine_on(store, recorder) as engine:
        engine.wake([run.id for run in runs])
        engine.run_until_idle(timeout=30)
    with store.transaction() as uow:
        records = [uow.get_run(run.id) for run in runs]
    finished = sorted((r for r in records if r is not None), key=lambda r: str(r.started_at))
    assert [run.logical_date for run in finished] == sorted(r.logical_date for r in runs)
    for earlier, later in itertools.pairwise(finished):
        assert earlier.state is DagRunState.SUCCEEDED
        assert earlier.finished_at is not None
        assert later.started_at is not None
        assert later.started_at >= earlier.finished_at
