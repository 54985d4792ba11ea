"""A run from queued to finished through the engine and the in-process executor."""

from __future__ import annotations

import json

from controller.base.states import DagRunState, TaskState
from controller.engine.seam import LaunchOrder
from controller.store import Store
from tests.engine.support import dag, task
from tests.runtime.inprocess import Outcome
from tests.runtime.support import (
    Recorder,
    engine_on,
    final_states,
    queue_run,
    run_state,
    store_dag,
    task_rows,
)

FAN_OUT = dag(
    task("extract", command=["extract", "{{ run.logicalDate }}"]),
    task(
        "transform",
        "extract",
        items=["orders", "refunds"],
        command=["t", "{{ item }}", "{{ tasks.extract.result }}"],
    ),
    task("load", "transform", command=["load", "{{ tasks.transform.result }}"]),
    name="sales",
)


def echo(order: LaunchOrder) -> Outcome:
    if order.task.name == "extract":
        return Outcome.succeeded("s3://bucket/raw")
    if order.task.name == "transform":
        return Outcome.succeeded(f"{order.rendered.command[1]}<-{order.rendered.command[2]}")
    return Outcome.succeeded(" ".join(order.rendered.command))


def test_a_fan_out_run_passes_results_downstream_and_succeeds(store: Store) -> None:
    store_dag(store, FAN_OUT)
    run = queue_run(store, FAN_OUT)
    recorder = Recorder(echo)
    with engine_on(store, recorder) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    rows = {(r.task_name, r.item_index): r for r in task_rows(store, run.id)}
    assert rows[("transform", 1)].result == "refunds<-s3://bucket/raw"
    load = rows[("load", 0)].result
    assert load is not None
    assert json.loads(load.removeprefix("load ")) == [
        "orders<-s3://bucket/raw",
        "refunds<-s3://bucket/raw",
    ]
    assert set(final_states(store, run.id).values()) == {TaskState.SUCCEEDED.value}
    assert all(count == 1 for count in recorder.calls.values())
    assert len(recorder.calls) == 4
