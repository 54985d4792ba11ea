"""Cancel, retry and mark through the operations layer and the engine, on both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest

from controller.base.states import DagRunState, TaskState
from controller.engine.seam import LaunchOrder, PodStop, UpdateSink
from controller.operations.requests import (
    ActionRefusedError,
    NotFoundError,
    request_cancel,
    request_mark,
    request_retry,
)
from controller.runtime.engine import Engine
from controller.spec.model import ResultFormat
from controller.store import Store, TaskInstanceRecord
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

CHAIN = dag(
    task("extract"),
    task("load", "extract", retries=2, command=["load", "{{ tasks.extract.result }}"]),
    task("report", "load"),
    name="sales",
)
BY = "test:alice"


def history(store: Store, run_id: int) -> list[tuple[str, int, str]]:
    return [(r.task_name, r.try_number, r.state.value) for r in task_rows(store, run_id)]


def row_of(store: Store, run_id: int, name: str) -> TaskInstanceRecord:
    return [r for r in task_rows(store, run_id) if r.task_name == name][-1]


def request_state(store: Store, request_id: int) -> tuple[str, str | None]:
    with store.transaction() as uow:
        request = uow.get_request(request_id)
    assert request is not None
    return request.state, request.outcome


def running(engine: Engine, store: Store, run_id: int, name: str) -> bool:
    """Step the engine; True once `name`'s latest try is running."""
    engine.step()
    rows = [r for r in task_rows(store, run_id) if r.task_name == name]
    return bool(rows) and rows[-1].state is TaskState.RUNNING


def executor_of(engine: Engine) -> InProcessExecutor:
    executor = engine._executor
    assert isinstance(executor, InProcessExecutor)
    return executor


class Gate:
    """A behaviour that holds `task` running until released, and succeeds the rest."""

    def __init__(self, task_name: str) -> None:
        self.task_name = task_name
        self.release = threading.Event()

    def __call__(self, order: LaunchOrder) -> Outcome:
        if order.task.name == self.task_name:
            self.release.wait(30)
        return Outcome.succeeded(order.task.name)


@pytest.fixture
def gate() -> Iterator[Gate]:
    held = Gate("extract")
    yield held
    held.release.set()


def test_cancel_while_a_task_runs_stops_its_pod_and_launches_nothing_more(
    store: Store, gate: Gate
) -> None:
    store_dag(store, CHAIN)
    run = queue_run(store, CHAIN)
    recorder = Recorder(gate)
    with engine_on(store, recorder) as engine:
        engine.wake([run.id])
        engine.step()
        wait_for(lambda: row_of(store, run.id, "extract").state is TaskState.RUNNING)
        queued = request_cancel(store, run.id, by=BY, grace_seconds=5)
        assert queued.request is not None
        engine.requests_pending()
        engine.step()
        gate.release.set()
        engine.run_until_idle(timeout=10)
        executor = executor_of(engine)
        extract = row_of(store, run.id, "extract")
        assert [(s.pod_name, s.grace_seconds) for s in executor.cancelled] == [
            (extract.pod_name, 5)
        ]
    assert run_state(store, run.id) is DagRunState.CANCELLED
    assert (extract.state, extract.set_by, extract.reason) == (
        TaskState.CANCELLED,
        BY,
        "Cancelled",
    )
    assert history(store, run.id) == [("extract", 1, "cancelled")]
    assert set(recorder.calls) == {("extract", 0, 1)}
    assert request_state(store, queued.request.id)[0] == "done"
    with store.transaction() as uow:
        kinds = [event.kind for event in uow.list_events(run_id=run.id)]
    assert kinds[-2:] == ["action-requested", "run-cancelled"]


class NeverStarts:
    """An executor whose pods never report: its tries stay LAUNCHED."""

    relaunches_itself = False

    def start(self, sink: UpdateSink) -> None:
        self.sink = sink

    def launch(self, orders: Sequence[LaunchOrder]) -> None:
        self.orders = list(orders)

    def cancel(self, stops: Sequence[PodStop]) -> None:
        self.cancelled = list(stops)

    def stop(self) -> None:
        return None


def test_a_cancel_asked_while_no_engine_runs_is_applied_before_anything_relaunches(
    store: Store,
) -> None:
    store_dag(store, CHAIN)
    run = queue_run(store, CHAIN)
    engine = Engine(store, NeverStarts())
    engine.start(background=False)
    engine.wake([run.id])
    engine.step()
    engine.stop()
    assert row_of(store, run.id, "extract").state is TaskState.LAUNCHED
    request_cancel(store, run.id, by=BY)
    recorder = Recorder()
    with engine_on(store, recorder) as second:
        second.run_until_idle(timeout=10)
        assert [stop.pod_name for stop in executor_of(second).cancelled] == [
            row_of(store, run.id, "extract").pod_name
        ]
    assert run_state(store, run.id) is DagRunState.CANCELLED
    assert recorder.calls == {}


def test_cancelling_a_cancelled_run_is_a_no_op_and_a_finished_one_is_refused(
    store: Store,
) -> None:
    store_dag(store, CHAIN)
    run = queue_run(store, CHAIN)
    request_cancel(store, run.id, by=BY)
    with engine_on(store, Recorder()) as engine:
        engine.run_until_idle(timeout=10)
    assert run_state(store, run.id) is DagRunState.CANCELLED
    assert request_cancel(store, run.id, by=BY).request is None
    done = queue_run(store, CHAIN, logical_date=run.logical_date.replace(day=2))
    with engine_on(store, Recorder()) as engine:
        engine.wake([done.id])
        engine.run_until_idle(timeout=10)
    with pytest.raises(ActionRefusedError, match="already succeeded; only a queued or running"):
        request_cancel(store, done.id, by=BY)
    with pytest.raises(NotFoundError, match="no run with id 999"):
        request_cancel(store, 999, by=BY)


def fail_load_once(order: LaunchOrder) -> Outcome:
    if order.task.name == "load" and order.key.try_number == 1:
        return Outcome.failed(message="boom")
    return Outcome.succeeded(order.task.name)


NO_RETRY = dag(task("extract"), task("load", "extract"), task("report", "load"), name="sales")


def test_retry_reruns_the_failed_task_and_its_downstream_in_the_same_run(store: Store) -> None:
    store_dag(store, NO_RETRY)
    run = queue_run(store, NO_RETRY)
    recorder = Recorder(fail_load_once)
    with engine_on(store, recorder) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
        assert run_state(store, run.id) is DagRunState.FAILED
        with pytest.raises(NotFoundError, match=r"the run has no task .nope."):
            request_retry(store, run.id, by=BY, latest=False, task="nope")
        request_retry(store, run.id, by=BY)
        engine.requests_pending()
        engine.run_until_idle(timeout=10)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    assert history(store, run.id) == [
        ("extract", 1, "succeeded"),
        ("load", 1, "failed"),
        ("load", 2, "cleared"),
        ("load", 3, "succeeded"),
        ("report", 1, "upstream_failed"),
        ("report", 2, "cleared"),
        ("report", 3, "succeeded"),
    ]
    assert recorder.calls[("extract", 0, 1)] == 1
    assert {order.revision for order in recorder.orders} == {run.revision}


def test_retry_of_a_running_run_is_refused_and_changes_nothing(store: Store, gate: Gate) -> None:
    store_dag(store, CHAIN)
    run = queue_run(store, CHAIN)
    with engine_on(store, Recorder(gate)) as engine:
        engine.wake([run.id])
        engine.step()
        with pytest.raises(ActionRefusedError, match="is running; only a finished run"):
            request_retry(store, run.id, by=BY)
        gate.release.set()
        engine.run_until_idle(timeout=10)
    with store.transaction() as uow:
        assert uow.pending_requests() == []


def test_retry_latest_repins_the_run_to_the_newest_version(store: Store) -> None:
    store_dag(store, NO_RETRY)
    run = queue_run(store, NO_RETRY)
    recorder = Recorder(fail_load_once)
    with engine_on(store, recorder) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
        store_dag(store, NO_RETRY, revision="f" * 40)
        queued = request_retry(store, run.id, by=BY, latest=True)
        assert "at ffffffffffff" in queued.message
        engine.requests_pending()
        engine.run_until_idle(timeout=10)
    with store.transaction() as uow:
        record = uow.get_run(run.id)
    assert record is not None
    assert (record.state, record.revision) == (DagRunState.SUCCEEDED, "f" * 40)
    assert [o.revision for o in recorder.orders if o.key.try_number == 3] == ["f" * 40] * 2


def test_retry_latest_is_refused_when_the_newest_version_dropped_a_task_of_the_run(
    store: Store,
) -> None:
    store_dag(store, NO_RETRY)
    run = queue_run(store, NO_RETRY)
    with engine_on(store, Recorder(fail_load_once)) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
    store_dag(store, dag(task("extract"), task("load", "extract"), name="sales"), revision="e" * 40)
    with pytest.raises(ActionRefusedError, match="it has no task 'report'; retry it without"):
        request_retry(store, run.id, by=BY, latest=True)


def test_retry_of_one_task_reruns_it_and_its_downstream_in_a_succeeded_run(store: Store) -> None:
    store_dag(store, NO_RETRY)
    run = queue_run(store, NO_RETRY)
    recorder = Recorder()
    with engine_on(store, recorder) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
        with pytest.raises(ActionRefusedError, match="nothing to retry"):
            request_retry(store, run.id, by=BY)
        request_retry(store, run.id, by=BY, task="load")
        engine.requests_pending()
        engine.run_until_idle(timeout=10)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    assert sorted(recorder.calls) == [
        ("extract", 0, 1),
        ("load", 0, 1),
        ("load", 0, 3),
        ("report", 0, 1),
        ("report", 0, 3),
    ]


def test_marking_a_failed_task_succeeded_lets_its_downstream_read_the_result(
    store: Store,
) -> None:
    store_dag(store, CHAIN)
    run = queue_run(store, CHAIN)

    def extract_fails(order: LaunchOrder) -> Outcome:
        if order.task.name == "extract":
            return Outcome.failed(message="source down")
        return Outcome.succeeded(" ".join(order.rendered.command))

    recorder = Recorder(extract_fails)
    with engine_on(store, recorder) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
        assert run_state(store, run.id) is DagRunState.FAILED
        request_mark(store, run.id, by=BY, task="extract", state="succeeded", result="by-hand")
        engine.requests_pending()
        engine.run_until_idle(timeout=10)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    extract = row_of(store, run.id, "extract")
    assert (extract.try_number, extract.state, extract.set_by) == (2, TaskState.SUCCEEDED, BY)
    assert row_of(store, run.id, "load").result == "load by-hand"
    assert recorder.calls[("extract", 0, 1)] == 1
    assert ("extract", 0, 2) not in recorder.calls


def test_marking_a_running_task_failed_stops_it_without_a_retry(store: Store) -> None:
    held = Gate("load")
    store_dag(store, CHAIN)
    run = queue_run(store, CHAIN)
    recorder = Recorder(held)
    with engine_on(store, recorder) as engine:
        engine.wake([run.id])
        wait_for(lambda: running(engine, store, run.id, "load"))
        with pytest.raises(ActionRefusedError, match="only a task marked succeeded has a result"):
            request_mark(store, run.id, by=BY, task="load", state="failed", result="x")
        request_mark(store, run.id, by=BY, task="load", state="failed")
        engine.requests_pending()
        engine.step()
        assert [stop.pod_name for stop in executor_of(engine).cancelled] == [
            row_of(store, run.id, "load").pod_name
        ]
        held.release.set()
        engine.run_until_idle(timeout=10)
    assert run_state(store, run.id) is DagRunState.FAILED
    assert history(store, run.id) == [
        ("extract", 1, "succeeded"),
        ("load", 1, "failed"),
        ("report", 1, "upstream_failed"),
    ]
    assert row_of(store, run.id, "load").reason == "MarkedFailed"


def test_cancelling_one_task_fails_its_downstream_and_the_run(store: Store, gate: Gate) -> None:
    store_dag(store, CHAIN)
    run = queue_run(store, CHAIN)
    with engine_on(store, Recorder(gate)) as engine:
        engine.wake([run.id])
        engine.step()
        wait_for(lambda: row_of(store, run.id, "extract").state is TaskState.RUNNING)
        with pytest.raises(ActionRefusedError, match=r"load\[0\] of run \d+ has not started"):
            request_cancel(store, run.id, by=BY, task="load")
        request_cancel(store, run.id, by=BY, task="extract")
        engine.requests_pending()
        engine.step()
        gate.release.set()
        engine.run_until_idle(timeout=10)
    assert run_state(store, run.id) is DagRunState.FAILED
    assert history(store, run.id) == [
        ("extract", 1, "cancelled"),
        ("load", 1, "upstream_failed"),
        ("report", 1, "upstream_failed"),
    ]


def test_marking_a_json_task_succeeded_needs_a_json_result(store: Store) -> None:
    the_dag = dag(task("emit", result_format=ResultFormat.JSON), name="sales")
    store_dag(store, the_dag)
    run = queue_run(store, the_dag)
    with engine_on(store, Recorder(lambda order: Outcome.failed())) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
    with pytest.raises(ActionRefusedError, match="pass a JSON --result"):
        request_mark(store, run.id, by=BY, task="emit", state="succeeded")
    request_mark(store, run.id, by=BY, task="emit", state="succeeded", result='{"rows": 3}')


DYNAMIC = dag(
    task("list", result_format=ResultFormat.JSON),
    task("each", "list", items_from="list", command=["each", "{{ item }}"]),
    name="sales",
)


def test_a_retry_expands_a_dynamic_fan_out_that_never_ran(store: Store) -> None:
    store_dag(store, DYNAMIC)
    run = queue_run(store, DYNAMIC)

    def list_fails_once(order: LaunchOrder) -> Outcome:
        if order.task.name == "list":
            if order.key.try_number == 1:
                return Outcome.failed(message="source down")
            return Outcome.succeeded('["a", "b"]')
        return Outcome.succeeded(order.rendered.command[1])

    with engine_on(store, Recorder(list_fails_once)) as engine:
        engine.wake([run.id])
        engine.run_until_idle(timeout=10)
        assert run_state(store, run.id) is DagRunState.FAILED
        request_retry(store, run.id, by=BY)
        engine.requests_pending()
        engine.run_until_idle(timeout=10)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    each = [
        (r.item_index, r.try_number, r.state.value, r.item)
        for r in task_rows(store, run.id)
        if r.task_name == "each"
    ]
    assert each == [
        (0, 1, "upstream_failed", None),
        (0, 2, "cleared", None),
        (0, 3, "succeeded", "a"),
        (1, 1, "succeeded", "b"),
    ]
