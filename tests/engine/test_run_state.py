"""A run ends when every instance is finished for good: succeeded only if none failed."""

from __future__ import annotations

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.engine.records import Instances
from controller.spec.model import TriggerRule
from tests.engine.support import T0, created, dag, row, start, task


def test_a_run_of_successes_and_skips_succeeds() -> None:
    the_dag = dag(
        task("a"),
        task("b", "a", rule=TriggerRule.ALL_FAILED),
        task("c", "a"),
    )
    planner, _ = start(the_dag)
    plan = planner.advance([row("a", TaskState.SUCCEEDED)], now=T0)
    assert created(plan) == {("c", 0, 1)}
    assert plan.run_state is None
    done = planner.advance([row("c", TaskState.SUCCEEDED)], now=T0)
    assert done.run_state is DagRunState.SUCCEEDED


def test_an_all_done_cleanup_runs_but_the_run_still_fails() -> None:
    the_dag = dag(task("work"), task("cleanup", "work", rule=TriggerRule.ALL_DONE))
    planner, _ = start(the_dag)
    plan = planner.advance([row("work", TaskState.FAILED)], now=T0)
    assert created(plan) == {("cleanup", 0, 1)}
    assert plan.run_state is None
    end = planner.advance([row("cleanup", TaskState.SUCCEEDED)], now=T0)
    assert end.run_state is DagRunState.FAILED


def test_a_run_is_not_over_while_a_retry_is_pending() -> None:
    planner, _ = start(dag(task("a", retries=1)))
    plan = planner.advance([row("a", TaskState.FAILED)], now=T0)
    assert plan.run_state is None
    assert planner.run_state is None


def test_recovery_of_a_finished_run_reports_its_state_and_nothing_else() -> None:
    rows = [row("a", TaskState.SUCCEEDED), row("b", TaskState.SKIPPED)]
    _, plan = start(dag(task("a"), task("b", "a")), rows)
    assert (plan.create, plan.finish, plan.run_state) == ([], [], DagRunState.SUCCEEDED)


def test_recovery_in_the_middle_of_a_run_recreates_nothing_that_exists() -> None:
    the_dag = dag(task("a", items=[1, 2]), task("b", "a"), task("c", "b"))
    rows = [
        row("a", TaskState.SUCCEEDED, item=0),
        row("a", TaskState.SUCCEEDED, item=1),
        row("b", TaskState.RUNNING),
    ]
    planner, plan = start(the_dag, rows)
    assert plan.decisions == 0
    assert created(planner.advance([row("b", TaskState.SUCCEEDED)], now=T0)) == {("c", 0, 1)}


def test_recovery_completes_a_fan_out_whose_rows_were_partly_written() -> None:
    the_dag = dag(task("a"), task("b", "a", items=["x", "y", "z"]))
    rows = [row("a", TaskState.SUCCEEDED), row("b", TaskState.PENDING, item=1)]
    _, plan = start(the_dag, rows)
    assert created(plan) == {("b", 0, 1), ("b", 2, 1)}


def outcomes(instances: Instances | None) -> list[tuple[str, int, int, TaskState | None]]:
    assert instances is not None
    return [(i.task, i.item_index, i.try_number, i.state) for i in instances.listed]


def test_a_run_whose_failure_is_certain_says_so_once_and_names_what_it_waits_for() -> None:
    the_dag = dag(task("doomed"), task("pulled"), task("later", "pulled"))
    planner, _ = start(the_dag)
    infra = row("pulled", TaskState.FAILED, kind=FailureKind.INFRA)
    plan = planner.advance([row("doomed", TaskState.FAILED), infra], now=T0)
    assert plan.run_state is None
    assert plan.failing is not None
    assert outcomes(plan.failing.failed) == [("doomed", 0, 1, TaskState.FAILED)]
    assert outcomes(plan.failing.unfinished) == [
        ("pulled", 0, 2, TaskState.PENDING),
        ("later", 0, 0, None),
    ]
    retried = planner.advance([row("pulled", TaskState.SUCCEEDED, try_number=2)], now=T0)
    assert retried.failing is None
    end = planner.advance([row("later", TaskState.SUCCEEDED)], now=T0)
    assert (end.failing, end.run_state) == (None, DagRunState.FAILED)
    assert outcomes(end.failed) == [("doomed", 0, 1, TaskState.FAILED)]


def test_a_run_that_fails_at_its_last_instance_ends_without_a_failing_notice() -> None:
    planner, _ = start(dag(task("a", items=list(range(12)))))
    plan = planner.advance([row("a", TaskState.FAILED, item=i) for i in range(12)], now=T0)
    assert (plan.failing, plan.run_state) == (None, DagRunState.FAILED)
    assert plan.failed is not None
    assert (len(plan.failed.listed), plan.failed.total) == (Instances.LISTED, 12)
