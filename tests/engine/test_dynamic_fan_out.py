"""withItems from an upstream result: expansion, its failures, and recovery without re-expanding."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.engine.expansion import MAX_ITEMS
from controller.engine.records import InstanceKey
from controller.spec.model import Dag, ResultFormat, TriggerRule
from tests.engine.support import T0, created, dag, finished, row, start, task


def _dynamic_dag(rule: TriggerRule = TriggerRule.ALL_SUCCESS) -> Dag:
    return dag(
        task("list", command=["list"], result_format=ResultFormat.JSON),
        task(
            "each",
            "list",
            items_from="list",
            command=["each", "{{ item }}"],
            result_format=ResultFormat.JSON,
            rule=rule,
        ),
        task("last", "each", command=["last", "{{ tasks.each.result }}"]),
    )


def test_the_upstream_array_gives_one_instance_per_element_in_order() -> None:
    planner, _ = start(_dynamic_dag())
    plan = planner.advance([row("list", TaskState.SUCCEEDED, result='["a", {"k": 1}, 3]')], now=T0)
    assert [(new.task, new.item_index, new.item) for new in plan.create] == [
        ("each", 0, "a"),
        ("each", 1, {"k": 1}),
        ("each", 2, 3),
    ]
    assert planner.render(InstanceKey("each", 1)).command == ("each", '{"k":1}')


def test_downstream_reads_the_results_in_item_order() -> None:
    planner, _ = start(_dynamic_dag())
    planner.advance([row("list", TaskState.SUCCEEDED, result='["a", "b"]')], now=T0)
    early = planner.advance([row("each", TaskState.SUCCEEDED, item=1, result='"B"')], now=T0)
    assert early.create == []
    late = planner.advance([row("each", TaskState.SUCCEEDED, item=0, result='"A"')], now=T0)
    assert created(late) == {("last", 0, 1)}
    assert planner.render(InstanceKey("last", 0)).command == ("last", '["A","B"]')


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ('{"a": 1}', "needs tasks.list.result to be a JSON array"),
        ("null", "needs tasks.list.result to be a JSON array, got null"),
        (json.dumps(list(range(MAX_ITEMS + 1))), f"more than the maximum of {MAX_ITEMS}"),
    ],
)
def test_an_unusable_result_fails_the_task_once_without_a_pod(result: str, message: str) -> None:
    the_dag = _dynamic_dag()
    planner, _ = start(the_dag)
    plan = planner.advance([row("list", TaskState.SUCCEEDED, result=result)], now=T0)
    assert plan.create == []
    failure, downstream = plan.finish
    assert (failure.task, failure.item_index, failure.state) == ("each", 0, TaskState.FAILED)
    assert failure.failure_kind is FailureKind.EXPANSION
    assert failure.message is not None
    assert message in failure.message
    assert (downstream.task, downstream.state) == ("last", TaskState.UPSTREAM_FAILED)
    assert plan.run_state is DagRunState.FAILED
    # A recovery from those rows does not retry the failed expansion.
    planner, plan = start(
        the_dag,
        [
            row("list", TaskState.SUCCEEDED, result=result),
            row("each", TaskState.FAILED, kind=FailureKind.EXPANSION),
        ],
    )
    assert created(plan) == set()
    assert finished(plan) == {("last", 0): TaskState.UPSTREAM_FAILED}


def test_an_expansion_failure_is_never_retried_even_with_retries() -> None:
    the_dag = dag(
        task("list", result_format=ResultFormat.JSON),
        task("each", "list", items_from="list", retries=3),
    )
    planner, _ = start(the_dag)
    plan = planner.advance([row("list", TaskState.SUCCEEDED, result='"no"')], now=T0)
    assert plan.create == []
    assert plan.run_state is DagRunState.FAILED


def test_an_empty_array_skips_the_task_and_its_result_is_empty() -> None:
    planner, _ = start(_dynamic_dag(TriggerRule.ALL_SUCCESS))
    plan = planner.advance([row("list", TaskState.SUCCEEDED, result="[]")], now=T0)
    assert finished(plan) == {("each", 0): TaskState.SKIPPED, ("last", 0): TaskState.SKIPPED}
    assert plan.run_state is DagRunState.SUCCEEDED


def test_an_empty_array_reads_as_an_empty_result_for_an_all_done_downstream() -> None:
    the_dag = dag(
        task("list", result_format=ResultFormat.JSON),
        task("each", "list", items_from="list"),
        task("report", "each", rule=TriggerRule.ALL_DONE, command=["r", "{{ tasks.each.result }}"]),
    )
    planner, _ = start(the_dag)
    plan = planner.advance([row("list", TaskState.SUCCEEDED, result="[]")], now=T0)
    assert created(plan) == {("report", 0, 1)}
    assert planner.render(InstanceKey("report", 0)).command == ("r", "[]")


def test_a_skipped_source_skips_the_fan_out_without_expanding() -> None:
    the_dag = dag(
        task("gate"),
        task("list", "gate", result_format=ResultFormat.JSON),
        task("each", "list", items_from="list"),
    )
    planner, _ = start(the_dag)
    plan = planner.advance([row("gate", TaskState.FAILED)], now=T0)
    assert finished(plan) == {
        ("list", 0): TaskState.UPSTREAM_FAILED,
        ("each", 0): TaskState.UPSTREAM_FAILED,
    }


def test_recovery_reads_the_expansion_from_the_rows_and_never_expands_again() -> None:
    """The upstream's stored result changed under the planner: the rows still win."""
    the_dag = _dynamic_dag()
    rows = [
        row("list", TaskState.SUCCEEDED, result='["x", "y", "z", "w"]'),
        row("each", TaskState.PENDING, item=0, value="a"),
        row("each", TaskState.SUCCEEDED, item=1, value="b", result='"B"'),
    ]
    planner, plan = start(the_dag, rows)
    assert plan.create == []
    assert plan.finish == []
    assert planner.render(InstanceKey("each", 0)).command == ("each", "a")
    plan = planner.advance([row("each", TaskState.SUCCEEDED, item=0, result='"A"')], now=T0)
    assert created(plan) == {("last", 0, 1)}
    assert planner.render(InstanceKey("last", 0)).command == ("last", '["A","B"]')


def test_recovery_expands_when_the_upstream_succeeded_but_no_expansion_was_written() -> None:
    _, plan = start(_dynamic_dag(), [row("list", TaskState.SUCCEEDED, result='["a"]')])
    assert [(new.task, new.item_index, new.item) for new in plan.create] == [("each", 0, "a")]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=3) | st.integers(), max_size=12))
def test_a_restart_at_any_point_after_expanding_plans_what_the_first_engine_planned(
    values: list[object],
) -> None:
    the_dag = _dynamic_dag()
    result = json.dumps(values)
    first, _ = start(the_dag)
    expanded = first.advance([row("list", TaskState.SUCCEEDED, result=result)], now=T0)
    rows = (
        [row("list", TaskState.SUCCEEDED, result=result)]
        + [
            row(new.task, TaskState.PENDING, item=new.item_index, value=new.item)
            for new in expanded.create
        ]
        + [row(done.task, done.state, item=done.item_index) for done in expanded.finish]
    )
    second, again = start(the_dag, rows)
    assert again.create == []
    assert again.finish == []
    for new in expanded.create:
        key = InstanceKey(new.task, new.item_index)
        assert second.render(key) == first.render(key)
