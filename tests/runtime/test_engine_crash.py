"""A stopped (crashed) engine and a new one on the same store: the run completes, nothing twice."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from controller.base.states import DagRunState, TaskState
from controller.engine.seam import CursorUpdate, LaunchOrder, PodStop, TaskUpdate, UpdateSink
from controller.runtime.engine import Engine, EngineStoppedError
from controller.store import Store
from tests.engine.support import dag, task
from tests.runtime.inprocess import InProcessExecutor, Outcome
from tests.runtime.support import Recorder, queue_run, run_state, store_dag, task_rows, wait_for

PIPELINE = dag(
    task("extract"),
    task("transform", "extract", items=["a", "b", "c"]),
    task("load", "transform"),
    name="pipeline",
)


class Gate:
    """Holds `transform` tries until opened, to stop the engine while they run."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Semaphore(0)

    def __call__(self, order: LaunchOrder) -> Outcome:
        if order.task.name == "transform":
            self.entered.release()
            assert self.opened.wait(30)
        return Outcome.succeeded(f"{order.task.name}-{order.key.item_index}")


def test_a_new_engine_finishes_a_run_whose_tries_outlived_the_old_one(store: Store) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    gate = Gate()
    recorder = Recorder(gate)
    executor = InProcessExecutor(recorder, workers=8)
    first = Engine(store, executor)
    first.start()
    first.wake([run.id])
    for _ in range(3):
        assert gate.entered.acquire(timeout=30)
    first.stop()
    gate.opened.set()  # the tries finish while no engine listens
    second = Engine(store, executor)
    second.start()
    try:
        wait_for(lambda: run_state(store, run.id) is DagRunState.SUCCEEDED)
    finally:
        second.stop()
        executor.close()
    assert all(count == 1 for count in recorder.calls.values()), recorder.calls
    assert len(recorder.calls) == 5
    assert {
        (row.task_name, row.item_index, row.try_number) for row in task_rows(store, run.id)
    } == set(recorder.calls)


class Swallow:
    """An executor that crashes before creating any pod: the orders are lost."""

    relaunches_itself = False

    def __init__(self) -> None:
        self.orders: list[LaunchOrder] = []

    def start(self, sink: UpdateSink) -> None:
        self.sink = sink

    def launch(self, orders: Sequence[LaunchOrder]) -> None:
        self.orders.extend(orders)

    def cancel(self, stops: Sequence[PodStop]) -> None:
        raise AssertionError(f"nothing was cancelled, yet {stops} were stopped")

    def stop(self) -> None:
        self.stopped = True


def test_tries_launched_just_before_a_crash_are_relaunched_under_the_same_pod_name(
    store: Store,
) -> None:
    store_dag(store, PIPELINE)
    run = queue_run(store, PIPELINE)
    lost = Swallow()
    first = Engine(store, lost)
    first.start(background=False)
    first.wake()
    first.step()
    first.stop()
    (extract,) = task_rows(store, run.id)
    assert extract.state is TaskState.LAUNCHED
    assert [order.pod_name for order in lost.orders] == [extract.pod_name]

    recorder = Recorder()
    executor = InProcessExecutor(recorder)
    second = Engine(store, executor)
    second.start(background=False)
    try:
        second.run_until_idle(timeout=30)
    finally:
        second.stop()
        executor.close()
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    assert recorder.orders[0].pod_name == extract.pod_name
    assert recorder.orders[0].relaunch
    assert all(count == 1 for count in recorder.calls.values())
    assert [row.try_number for row in task_rows(store, run.id) if row.task_name == "extract"] == [1]


def test_a_replayed_update_changes_nothing_and_the_cursor_commits_with_the_states(
    store: Store,
) -> None:
    single = dag(task("only"), name="single")
    store_dag(store, single)
    run = queue_run(store, single)
    lost = Swallow()
    engine = Engine(store, lost)
    engine.start(background=False)
    try:
        engine.wake()
        engine.step()
        (row,) = task_rows(store, run.id)
        done = TaskUpdate(row.id, TaskState.SUCCEEDED, result="42")
        running = TaskUpdate(row.id, TaskState.RUNNING)
        assert engine.apply([done], cursor=CursorUpdate("jobs", "100")) == [row.id]
        assert engine.apply([running, done], cursor=CursorUpdate("jobs", "101")) == []
        engine.run_until_idle(timeout=10)
    finally:
        engine.stop()
    with store.transaction() as uow:
        assert uow.get_cursor("jobs") == "101"
        events = uow.list_events(run_id=run.id)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    assert [event.kind for event in events].count("task-succeeded") == 1
    (row,) = task_rows(store, run.id)
    assert (row.state, row.result) == (TaskState.SUCCEEDED, "42")


def test_a_stopped_engine_refuses_updates_instead_of_writing_them(store: Store) -> None:
    engine = Engine(store, Swallow())
    with pytest.raises(EngineStoppedError):
        engine.apply([TaskUpdate(1, TaskState.RUNNING)])
