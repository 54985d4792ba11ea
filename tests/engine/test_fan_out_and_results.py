"""withItems expansion, results passed downstream in item order, json results."""

from __future__ import annotations

import json

import pytest

from controller.base.states import DagRunState, TaskState
from controller.engine.records import InstanceKey
from controller.engine.rendering import ResultError, parse_result
from controller.spec.model import Dag, ResultFormat, TriggerRule
from controller.spec.templates import TemplateError
from tests.engine.support import T0, created, dag, finished, row, start, task

ITEMS = ["orders", "refunds", "returns"]


def _fan_out_dag(result_format: ResultFormat = ResultFormat.TEXT) -> Dag:
    return dag(
        task("extract", command=["extract"]),
        task(
            "transform",
            "extract",
            items=ITEMS,
            command=["transform", "{{ item }}", "{{ tasks.extract.result }}"],
            result_format=result_format,
        ),
        task("load", "transform", command=["load", "{{ tasks.transform.result }}"]),
    )


def test_a_fan_out_task_gets_one_instance_per_item_in_item_order() -> None:
    planner, _ = start(_fan_out_dag())
    plan = planner.advance([row("extract", TaskState.SUCCEEDED, result="day-1")], now=T0)
    assert [(new.task, new.item_index, new.item) for new in plan.create] == [
        ("transform", 0, "orders"),
        ("transform", 1, "refunds"),
        ("transform", 2, "returns"),
    ]
    assert planner.render(InstanceKey("transform", 1)).command == (
        "transform",
        "refunds",
        "day-1",
    )


def test_downstream_waits_for_every_instance_of_a_fan_out_upstream() -> None:
    planner, _ = start(_fan_out_dag())
    planner.advance([row("extract", TaskState.SUCCEEDED)], now=T0)
    early = planner.advance(
        [row("transform", TaskState.SUCCEEDED, item=i, result=f"r{i}") for i in (2, 0)], now=T0
    )
    assert early.create == []
    late = planner.advance([row("transform", TaskState.SUCCEEDED, item=1, result="r1")], now=T0)
    assert created(late) == {("load", 0, 1)}


def test_a_fan_out_result_reads_downstream_as_an_array_in_item_order() -> None:
    planner, _ = start(_fan_out_dag())
    planner.advance([row("extract", TaskState.SUCCEEDED)], now=T0)
    planner.advance(
        [row("transform", TaskState.SUCCEEDED, item=i, result=f"r{i}") for i in (2, 0, 1)], now=T0
    )
    (argument,) = planner.render(InstanceKey("load", 0)).command[1:]
    assert json.loads(argument) == ["r0", "r1", "r2"]


def test_json_results_are_parsed_before_they_are_passed_downstream() -> None:
    planner, _ = start(_fan_out_dag(ResultFormat.JSON))
    planner.advance([row("extract", TaskState.SUCCEEDED)], now=T0)
    results = ['{"rows": 3}', "[1, 2]", '"x"']
    planner.advance(
        [row("transform", TaskState.SUCCEEDED, item=i, result=r) for i, r in enumerate(results)],
        now=T0,
    )
    (argument,) = planner.render(InstanceKey("load", 0)).command[1:]
    assert json.loads(argument) == [{"rows": 3}, [1, 2], "x"]


def test_an_instance_that_did_not_succeed_reads_as_null() -> None:
    the_dag = dag(
        task("extract", items=["a", "b"]),
        task(
            "report", "extract", rule=TriggerRule.ALL_DONE, command=["{{ tasks.extract.result }}"]
        ),
    )
    planner, _ = start(the_dag)
    planner.advance(
        [
            row("extract", TaskState.SUCCEEDED, item=0, result="fine"),
            row("extract", TaskState.FAILED, item=1),
        ],
        now=T0,
    )
    assert planner.render(InstanceKey("report", 0)).command == ('["fine",null]',)


def test_an_unparsable_json_result_fails_its_try_and_uses_a_retry() -> None:
    the_dag = dag(task("extract", retries=1, result_format=ResultFormat.JSON))
    planner, _ = start(the_dag)
    plan = planner.advance([row("extract", TaskState.SUCCEEDED, result="not json")], now=T0)
    (rejected,) = plan.reject
    assert (rejected.task, rejected.item_index, rejected.try_number) == ("extract", 0, 1)
    assert "not JSON" in rejected.message
    assert "'not json'" in rejected.message
    assert created(plan) == {("extract", 0, 2)}
    last = planner.advance([row("extract", TaskState.SUCCEEDED, try_number=2, result="{")], now=T0)
    assert len(last.reject) == 1
    assert last.run_state is DagRunState.FAILED


def test_an_unparsable_json_result_fails_its_try_on_recovery_too() -> None:
    the_dag = dag(task("extract", result_format=ResultFormat.JSON), task("load", "extract"))
    _, plan = start(the_dag, [row("extract", TaskState.SUCCEEDED, result="")])
    assert [r.task for r in plan.reject] == ["extract"]
    assert finished(plan) == {("load", 0): TaskState.UPSTREAM_FAILED}


def test_parse_result_keeps_text_as_text() -> None:
    assert parse_result(task("t"), '{"a": 1}') == '{"a": 1}'
    assert parse_result(task("t"), None) == ""
    with pytest.raises(ResultError, match="result format json"):
        parse_result(task("t", result_format=ResultFormat.JSON), "nope")


def test_run_fields_params_and_env_render_but_value_from_is_untouched() -> None:
    secret = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    the_dag = dag(
        task(
            "extract",
            command=[
                "{{ run.id }}",
                "{{ run.dag }}",
                "{{ run.logicalDate }}",
                "{{ run.revision }}",
                "{{ run.type }}",
                "--region={{ params.region }}",
            ],
            env=[{"name": "LIMIT", "value": "{{ params.limit }}"}, secret],
        )
    )
    planner, _ = start(the_dag, params={"region": "eu", "limit": 5})
    rendered = planner.render(InstanceKey("extract", 0))
    assert rendered.command == (
        "42",
        "sales",
        T0.isoformat(),
        "0123abcd",
        "scheduled",
        "--region=eu",
    )
    assert rendered.env == ({"name": "LIMIT", "value": "5"}, secret)


def test_a_missing_item_key_is_a_template_error_for_the_caller() -> None:
    the_dag = dag(task("copy", items=[{"table": "orders"}], command=["{{ item.days }}"]))
    planner, _ = start(the_dag)
    with pytest.raises(TemplateError, match="no key 'days'"):
        planner.render(InstanceKey("copy", 0))
