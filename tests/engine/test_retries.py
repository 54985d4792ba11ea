"""Retries: task failures spend the task's budget with exponential backoff; infra ones don't."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.engine.retries import INFRA_BACKOFF, retry_at
from controller.spec.model import RetryBackoff, RetryPolicy
from tests.engine.support import T0, created, dag, finished, row, start, task

BACKOFF = RetryBackoff(delay_seconds=30, factor=2, max_delay_seconds=100)


def test_a_task_failure_gets_a_new_try_after_the_backoff() -> None:
    planner, _ = start(dag(task("load", retries=2, backoff=BACKOFF)))
    failed_at = T0 + timedelta(minutes=5)
    plan = planner.advance([row("load", TaskState.FAILED, finished_at=failed_at)], now=T0)
    assert [(new.try_number, new.not_before) for new in plan.create] == [
        (2, failed_at + timedelta(seconds=30))
    ]
    assert plan.run_state is None


def test_backoff_grows_exponentially_and_is_capped() -> None:
    planner, _ = start(dag(task("load", retries=3, backoff=BACKOFF)))
    delays = []
    for try_number in (1, 2, 3):
        plan = planner.advance(
            [row("load", TaskState.FAILED, try_number=try_number, finished_at=T0)], now=T0
        )
        (new,) = plan.create
        assert new.not_before is not None
        delays.append((new.not_before - T0).total_seconds())
    assert delays == [30.0, 60.0, 100.0]


def test_the_instance_stays_failed_after_limit_plus_one_task_failures() -> None:
    planner, _ = start(dag(task("load", retries=1), task("report", "load")))
    planner.advance([row("load", TaskState.FAILED, try_number=1)], now=T0)
    plan = planner.advance([row("load", TaskState.FAILED, try_number=2)], now=T0)
    assert plan.create == []
    assert finished(plan) == {("report", 0): TaskState.UPSTREAM_FAILED}
    assert plan.run_state is DagRunState.FAILED


def test_a_retry_that_succeeds_lets_the_downstream_run() -> None:
    planner, _ = start(dag(task("load", retries=1), task("report", "load")))
    planner.advance([row("load", TaskState.FAILED, try_number=1)], now=T0)
    plan = planner.advance([row("load", TaskState.SUCCEEDED, try_number=2)], now=T0)
    assert created(plan) == {("report", 0, 1)}


def test_infra_failures_do_not_spend_task_retries() -> None:
    planner, _ = start(dag(task("load", retries=0)), max_infra_retries=2)
    first = planner.advance(
        [row("load", TaskState.FAILED, kind=FailureKind.INFRA, finished_at=T0)], now=T0
    )
    assert [(new.try_number, new.not_before) for new in first.create] == [
        (2, T0 + timedelta(seconds=INFRA_BACKOFF.delay_for(1)))
    ]
    second = planner.advance(
        [row("load", TaskState.FAILED, try_number=2, kind=FailureKind.INFRA)], now=T0
    )
    assert created(second) == {("load", 0, 3)}
    third = planner.advance(
        [row("load", TaskState.FAILED, try_number=3, kind=FailureKind.INFRA)], now=T0
    )
    assert third.create == []
    assert third.run_state is DagRunState.FAILED


def test_a_task_failure_after_infra_failures_still_has_its_task_retries() -> None:
    planner, _ = start(dag(task("load", retries=1)))
    planner.advance([row("load", TaskState.FAILED, kind=FailureKind.INFRA)], now=T0)
    plan = planner.advance([row("load", TaskState.FAILED, try_number=2)], now=T0)
    assert created(plan) == {("load", 0, 3)}


def test_recovery_counts_every_failed_try_of_an_instance() -> None:
    rows = [
        row("load", TaskState.FAILED, try_number=1),
        row("load", TaskState.FAILED, try_number=2, kind=FailureKind.INFRA),
        row("load", TaskState.FAILED, try_number=3),
    ]
    _, plan = start(dag(task("load", retries=2)), rows)
    assert created(plan) == {("load", 0, 4)}
    _, exhausted = start(dag(task("load", retries=1)), rows)
    assert exhausted.create == []
    assert exhausted.run_state is DagRunState.FAILED


def test_a_failure_without_a_finish_time_backs_off_from_now() -> None:
    planner, _ = start(dag(task("load", retries=1, backoff=BACKOFF)))
    now = T0 + timedelta(hours=1)
    change = replace(row("load", TaskState.FAILED), finished_at=None)
    plan = planner.advance([change], now=now)
    assert [new.not_before for new in plan.create] == [now + timedelta(seconds=30)]


def test_replayed_and_stale_events_change_nothing() -> None:
    planner, _ = start(dag(task("load", retries=1)))
    failure = row("load", TaskState.FAILED, try_number=1)
    assert created(planner.advance([failure], now=T0)) == {("load", 0, 2)}
    assert planner.advance([failure], now=T0).create == []
    assert planner.advance([row("load", TaskState.RUNNING)], now=T0).decisions == 0


@pytest.mark.parametrize(
    ("kind", "task_failures", "infra_failures", "expected_seconds"),
    [
        (FailureKind.TASK, 1, 0, 30.0),
        (FailureKind.TASK, 2, 5, 60.0),
        (FailureKind.TASK, 3, 0, None),
        (FailureKind.INFRA, 9, 1, 5.0),
        (FailureKind.INFRA, 0, 3, 20.0),
        (FailureKind.INFRA, 0, 4, None),
    ],
)
def test_retry_at_applies_the_budget_of_the_failure_kind(
    kind: FailureKind, task_failures: int, infra_failures: int, expected_seconds: float | None
) -> None:
    at = retry_at(
        policy=RetryPolicy(limit=2, backoff=BACKOFF),
        kind=kind,
        task_failures=task_failures,
        infra_failures=infra_failures,
        finished_at=T0,
        max_infra_retries=3,
    )
    expected = None if expected_seconds is None else T0 + timedelta(seconds=expected_seconds)
    assert at == expected
