"""Retries through the engine: task failures wait their backoff, infra failures spend none."""

from __future__ import annotations

from datetime import timedelta

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.engine.seam import LaunchOrder
from controller.spec.model import ResultFormat, RetryBackoff
from controller.store import Store
from tests.engine.support import dag, task
from tests.runtime.inprocess import Outcome
from tests.runtime.support import (
    FastClock,
    Recorder,
    engine_on,
    queue_run,
    run_state,
    store_dag,
    task_rows,
)

FLAKY = dag(
    task(
        "flaky", retries=2, backoff=RetryBackoff(delay_seconds=30, factor=2, max_delay_seconds=600)
    ),
    task("after", "flaky"),
    name="flaky-dag",
)


def fail_twice(order: LaunchOrder) -> Outcome:
    if order.task.name == "flaky" and order.key.try_number < 3:
        return Outcome.failed(message=f"boom {order.key.try_number}")
    return Outcome.succeeded("ok")


def test_a_failed_task_is_retried_after_its_exponential_backoff(store: Store) -> None:
    store_dag(store, FLAKY)
    run = queue_run(store, FLAKY)
    with engine_on(store, Recorder(fail_twice), clock=FastClock(speed=200)) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    tries = [row for row in task_rows(store, run.id) if row.task_name == "flaky"]
    assert [(row.try_number, row.state) for row in tries] == [
        (1, TaskState.FAILED),
        (2, TaskState.FAILED),
        (3, TaskState.SUCCEEDED),
    ]
    for previous, retry, delay in ((tries[0], tries[1], 30), (tries[1], tries[2], 60)):
        assert previous.finished_at is not None
        assert retry.not_before == previous.finished_at + timedelta(seconds=delay)
        assert retry.launched_at is not None
        assert retry.launched_at >= retry.not_before
    assert tries[0].message == "boom 1"
    assert tries[0].failure_kind is FailureKind.TASK


def test_a_task_out_of_retries_fails_the_run_and_its_downstream(store: Store) -> None:
    store_dag(store, FLAKY)
    run = queue_run(store, FLAKY)
    recorder = Recorder(lambda order: Outcome.failed(message="always"))
    with engine_on(store, recorder, clock=FastClock(speed=500)) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.FAILED
    rows = task_rows(store, run.id)
    assert [row.try_number for row in rows if row.task_name == "flaky"] == [1, 2, 3]
    assert [row.state for row in rows if row.task_name == "after"] == [TaskState.UPSTREAM_FAILED]
    assert ("after", 0, 1) not in recorder.calls


def test_an_infra_failure_is_retried_without_spending_a_task_retry(store: Store) -> None:
    no_retries = dag(task("once"), name="no-retries")
    store_dag(store, no_retries)
    run = queue_run(store, no_retries)

    def image_pull_then_ok(order: LaunchOrder) -> Outcome:
        if order.key.try_number == 1:
            return Outcome.failed(kind=FailureKind.INFRA, reason="ErrImagePull")
        return Outcome.succeeded()

    with engine_on(store, Recorder(image_pull_then_ok), clock=FastClock(speed=200)) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    first, second = task_rows(store, run.id)
    assert (first.state, first.failure_kind, first.reason) == (
        TaskState.FAILED,
        FailureKind.INFRA,
        "ErrImagePull",
    )
    assert first.exit_code is None
    assert second.state is TaskState.SUCCEEDED
    assert first.finished_at is not None
    assert second.not_before == first.finished_at + timedelta(seconds=5)


def test_a_run_that_fails_waits_for_a_pending_infra_retry_to_be_decided(store: Store) -> None:
    """The run's failure is known once `doomed` fails, but `pulled` still has a retry
    waiting: the run ends only after that try ran, so no instance is left at a failed
    try 1 that was going to be retried."""
    mixed = dag(task("doomed"), task("pulled"), task("after", "doomed"), name="mixed")
    store_dag(store, mixed)
    run = queue_run(store, mixed)

    def behave(order: LaunchOrder) -> Outcome:
        if order.task.name == "doomed":
            return Outcome.failed(message="planned failure")
        if order.task.name == "pulled" and order.key.try_number == 1:
            return Outcome.failed(kind=FailureKind.INFRA, reason="ErrImagePull")
        return Outcome.succeeded()

    with engine_on(store, Recorder(behave), clock=FastClock(speed=200)) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.FAILED
    pulled = [row for row in task_rows(store, run.id) if row.task_name == "pulled"]
    assert [(row.try_number, row.state) for row in pulled] == [
        (1, TaskState.FAILED),
        (2, TaskState.SUCCEEDED),
    ]
    with store.transaction() as uow:
        finished = uow.get_run(run.id)
    assert finished is not None
    assert finished.finished_at is not None
    assert pulled[1].finished_at is not None
    assert finished.finished_at >= pulled[1].finished_at
    with store.transaction() as uow:
        kinds = [event.kind for event in uow.list_events(run_id=run.id, limit=100)]
    # Why it waited, once, before it ended; and doomed's end though it decided nothing.
    assert kinds.count("run-failing") == 1
    assert kinds.index("run-failing") < kinds.index("run-failed")
    assert "task-retries-exhausted" in kinds


def test_infra_failures_stop_after_the_engines_bound(store: Store) -> None:
    no_retries = dag(task("once"), name="no-retries")
    store_dag(store, no_retries)
    run = queue_run(store, no_retries)
    recorder = Recorder(
        lambda order: Outcome.failed(kind=FailureKind.INFRA, reason="Unschedulable")
    )
    with engine_on(store, recorder, clock=FastClock(speed=500), max_infra_retries=2) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.FAILED
    assert sorted(recorder.calls) == [("once", 0, 1), ("once", 0, 2), ("once", 0, 3)]


def test_an_unreadable_json_result_fails_the_try_and_is_retried(store: Store) -> None:
    json_dag = dag(
        task(
            "emit",
            retries=1,
            backoff=RetryBackoff(delay_seconds=1),
            result_format=ResultFormat.JSON,
        ),
        name="json-dag",
    )
    store_dag(store, json_dag)
    run = queue_run(store, json_dag)

    def bad_then_good(order: LaunchOrder) -> Outcome:
        return Outcome.succeeded("not json" if order.key.try_number == 1 else '{"rows": 3}')

    with engine_on(store, Recorder(bad_then_good), clock=FastClock(speed=200)) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert run_state(store, run.id) is DagRunState.SUCCEEDED
    first, second = task_rows(store, run.id)
    assert (first.state, first.reason) == (TaskState.FAILED, "ResultRejected")
    assert first.message is not None
    assert "not JSON" in first.message
    assert second.state is TaskState.SUCCEEDED
