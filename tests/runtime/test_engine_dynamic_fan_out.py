"""Dynamic fan-out through the engine and the store: rows, results, failures, a crash."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.engine.seam import LaunchOrder
from controller.runtime.engine import Engine
from controller.spec.model import ResultFormat
from controller.store import Store
from tests.engine.support import dag, task
from tests.runtime.inprocess import InProcessExecutor, Outcome
from tests.runtime.support import (
    Recorder,
    engine_on,
    queue_run,
    run_state,
    store_dag,
    task_rows,
    wait_for,
)

DYNAMIC = dag(
    task("list", command=["list"], result_format=ResultFormat.JSON),
    task("each", "list", items_from="list", command=["each", "{{ item.table }}"]),
    task("last", "each", command=["last", "{{ tasks.each.result }}"]),
    name="dynamic",
)


def lister(tables: object) -> Recorder:
    def behave(order: LaunchOrder) -> Outcome:
        if order.task.name == "list":
            return Outcome.succeeded(json.dumps(tables))
        return Outcome.succeeded(" ".join(order.rendered.command))

    return Recorder(behave)


def test_a_dynamic_fan_out_runs_one_pod_per_element_and_passes_results_in_order(
    store: Store,
) -> None:
    store_dag(store, DYNAMIC)
    run = queue_run(store, DYNAMIC)
    recorder = lister([{"table": "orders"}, {"table": "refunds"}, {"table": "returns"}])
    with engine_on(store, recorder) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    rows = {(r.task_name, r.item_index): r for r in task_rows(store, run.id)}
    assert [rows[("each", i)].item for i in range(3)] == [
        {"table": "orders"},
        {"table": "refunds"},
        {"table": "returns"},
    ]
    (last,) = [o for o in recorder.orders if o.task.name == "last"]
    assert last.rendered.command[1] == '["each orders","each refunds","each returns"]'
    assert all(count == 1 for count in recorder.calls.values())


def test_a_result_that_is_not_an_array_fails_the_task_with_the_reason_in_its_row(
    store: Store,
) -> None:
    store_dag(store, DYNAMIC)
    run = queue_run(store, DYNAMIC)
    recorder = lister({"table": "orders"})
    with engine_on(store, recorder) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.FAILED
    rows = {(r.task_name, r.item_index): r for r in task_rows(store, run.id)}
    each = rows[("each", 0)]
    assert each.state is TaskState.FAILED
    assert each.failure_kind is FailureKind.EXPANSION
    assert each.message is not None
    assert "needs tasks.list.result to be a JSON array" in each.message
    assert rows[("last", 0)].state is TaskState.UPSTREAM_FAILED
    assert [o.task.name for o in recorder.orders] == ["list"]


def test_an_engine_stopped_after_expanding_and_before_launching_launches_each_item_once(
    store: Store,
) -> None:
    """maxActiveTasks 1, and `hold` (created before the items) running: the items wait."""
    the_dag = replace(
        dag(
            task("list", command=["list"], result_format=ResultFormat.JSON),
            task("hold", "list"),
            task("each", "list", items_from="list", command=["each", "{{ item }}"]),
            name="crash",
        ),
        max_active_tasks=1,
    )
    store_dag(store, the_dag)
    run = queue_run(store, the_dag)
    held = threading.Event()
    release = threading.Event()

    def behave(order: LaunchOrder) -> Outcome:
        if order.task.name == "list":
            return Outcome.succeeded('["a", "b"]')
        if order.task.name == "hold":
            held.set()
            assert release.wait(30)
        return Outcome.succeeded(" ".join(order.rendered.command))

    recorder = Recorder(behave)
    executor = InProcessExecutor(recorder, workers=4)
    first = Engine(store, executor)
    first.start()
    first.wake([run.id])
    assert held.wait(30)
    first.stop()
    expanded = {(r.task_name, r.item_index): r.state for r in task_rows(store, run.id)}
    assert expanded[("each", 0)] is TaskState.PENDING
    assert expanded[("each", 1)] is TaskState.PENDING
    release.set()  # `hold` finishes while no engine listens
    second = Engine(store, executor)
    second.start()
    try:
        wait_for(lambda: run_state(store, run.id) is DagRunState.SUCCEEDED)
    finally:
        second.stop()
        executor.close()
    rows = task_rows(store, run.id)
    assert sorted((r.task_name, r.item_index, r.try_number, r.item) for r in rows) == [
        ("each", 0, 1, "a"),
        ("each", 1, 1, "b"),
        ("hold", 0, 1, None),
        ("list", 0, 1, None),
    ]
    assert recorder.calls == {
        ("list", 0, 1): 1,
        ("hold", 0, 1): 1,
        ("each", 0, 1): 1,
        ("each", 1, 1): 1,
    }
