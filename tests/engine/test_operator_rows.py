"""What the planner makes of an operator's rows: cleared, marked and cancelled tries."""

from __future__ import annotations

from dataclasses import replace

from controller.base.states import DagRunState, TaskState
from controller.engine.clearing import (
    downstream_to_clear,
    failed_to_clear,
    misfit,
    task_to_clear,
)
from controller.engine.graph import build_graph
from controller.spec.model import TriggerRule
from tests.engine.support import T0, created, dag, finished, row, start, task

CHAIN = dag(task("extract"), task("load", "extract"), task("report", "load"))


def test_a_cleared_failed_instance_gets_the_next_try_and_its_downstream_waits() -> None:
    rows = [
        row("extract", TaskState.FAILED),
        row("extract", TaskState.CLEARED, try_number=2),
        row("load", TaskState.UPSTREAM_FAILED),
        row("load", TaskState.CLEARED, try_number=2),
        row("report", TaskState.UPSTREAM_FAILED),
        row("report", TaskState.CLEARED, try_number=2),
    ]
    planner, plan = start(CHAIN, rows)
    assert created(plan) == {("extract", 0, 3)}
    assert plan.finish == []
    assert plan.run_state is None
    plan = planner.advance([row("extract", TaskState.SUCCEEDED, try_number=3)], now=T0)
    assert created(plan) == {("load", 0, 3)}


def test_a_cleared_downstream_is_decided_again_when_its_upstream_fails_again() -> None:
    rows = [
        row("extract", TaskState.FAILED),
        row("extract", TaskState.CLEARED, try_number=2),
        row("load", TaskState.UPSTREAM_FAILED),
        row("load", TaskState.CLEARED, try_number=2),
    ]
    planner, _ = start(dag(task("extract"), task("load", "extract")), rows)
    plan = planner.advance([row("extract", TaskState.FAILED, try_number=3)], now=T0)
    assert finished(plan) == {("load", 0): TaskState.UPSTREAM_FAILED}
    assert [f.try_number for f in plan.finish] == [3]
    assert plan.run_state is DagRunState.FAILED


def test_clearing_gives_the_task_its_retries_again() -> None:
    rows = [
        row("load", TaskState.FAILED, try_number=1),
        row("load", TaskState.FAILED, try_number=2),
        row("load", TaskState.CLEARED, try_number=3),
    ]
    planner, plan = start(dag(task("load", retries=1)), rows)
    assert created(plan) == {("load", 0, 4)}
    plan = planner.advance([row("load", TaskState.FAILED, try_number=4)], now=T0)
    assert [new.try_number for new in plan.create] == [5]


def test_a_try_marked_failed_is_not_retried() -> None:
    planner, _ = start(dag(task("load", retries=3), task("report", "load")))
    marked = replace(row("load", TaskState.FAILED), marked=True)
    plan = planner.advance([marked], now=T0)
    assert plan.create == []
    assert finished(plan) == {("report", 0): TaskState.UPSTREAM_FAILED}


def test_a_cancelled_try_counts_as_a_failure_and_is_not_retried() -> None:
    the_dag = dag(
        task("load", retries=3),
        task("report", "load"),
        task("alert", "load", rule=TriggerRule.ONE_FAILED),
    )
    planner, _ = start(the_dag)
    plan = planner.advance([row("load", TaskState.CANCELLED)], now=T0)
    assert created(plan) == {("alert", 0, 1)}
    assert finished(plan) == {("report", 0): TaskState.UPSTREAM_FAILED}


def test_a_run_retry_clears_failures_and_what_they_held_back_but_not_successes() -> None:
    the_dag = dag(
        task("extract", items=["a", "b"]),
        task("load", "extract"),
        task("alert", "extract", rule=TriggerRule.ONE_FAILED),
        task("other"),
    )
    latest = {
        ("extract", 0): TaskState.SUCCEEDED,
        ("extract", 1): TaskState.FAILED,
        ("load", 0): TaskState.UPSTREAM_FAILED,
        ("alert", 0): TaskState.SUCCEEDED,
        ("other", 0): TaskState.SUCCEEDED,
    }
    assert failed_to_clear(build_graph(the_dag), latest) == [("extract", 1), ("load", 0)]


def test_a_task_retry_clears_the_task_and_everything_finished_below_it() -> None:
    latest = {
        ("extract", 0): TaskState.SUCCEEDED,
        ("load", 0): TaskState.SUCCEEDED,
        ("report", 0): TaskState.FAILED,
    }
    graph = build_graph(CHAIN)
    assert task_to_clear(graph, latest, task="load") == [("load", 0), ("report", 0)]
    assert downstream_to_clear(graph, latest, task="extract") == {("load", 0), ("report", 0)}


def test_a_version_without_a_task_of_the_run_does_not_fit_it() -> None:
    graph = build_graph(dag(task("extract"), task("load", "extract")))
    assert misfit(graph, [("extract", 0), ("load", 0)]) is None
    assert misfit(graph, [("report", 0)]) == "it has no task 'report'"
    assert misfit(graph, [("load", 1)]) == "task 'load' has 1 items, the run has item 1"
