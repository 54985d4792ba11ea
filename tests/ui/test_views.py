"""The UI's read endpoints' answers, from a real store on each backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from controller.base.states import RunType, TaskState
from controller.spec.model import Dag, Task, TriggerRule, dag_to_dict
from controller.store import DagRunRecord, NewTaskInstance, Store
from controller.ui import views
from tests.store.rows import LOGICAL_DATE

SPEC: dict[str, Any] = dag_to_dict(
    Dag(
        name="fan",
        tasks=(
            Task(name="extract", image="busybox"),
            Task(
                name="transform",
                image="busybox",
                depends_on=("extract",),
                with_items=("a", "b", "c"),
            ),
            Task(
                name="cleanup",
                image="busybox",
                depends_on=("transform",),
                trigger_rule=TriggerRule.ALL_DONE,
            ),
        ),
    )
)


def make_runs(store: Store, count: int) -> list[DagRunRecord]:
    with store.transaction() as uow:
        uow.upsert_dag(name="fan", path="fan.yaml", revision="a" * 40, spec_hash="h", spec=SPEC)
        return [
            uow.create_run(
                dag_name="fan",
                logical_date=LOGICAL_DATE + timedelta(days=day),
                run_type=RunType.SCHEDULED,
                revision="a" * 40,
                spec=SPEC,
            )[0]
            for day in range(count)
        ]


def add(store: Store, run: DagRunRecord, task: str, items: int, state: TaskState) -> None:
    with store.transaction() as uow:
        for record in uow.add_task_instances(
            NewTaskInstance(run_id=run.id, task_name=task, item_index=i) for i in range(items)
        ):
            if state is not TaskState.PENDING:
                assert uow.cas_task_state(record.id, expected=TaskState.PENDING, new=state)


def test_the_grid_counts_each_tasks_instances_by_state_for_a_page_of_runs(store: Store) -> None:
    older, newer = make_runs(store, 2)
    add(store, older, "extract", 1, TaskState.SUCCEEDED)
    add(store, older, "transform", 3, TaskState.RUNNING)
    with store.transaction() as uow:
        first = views.grid(uow, "fan", limit=1, before=None)
        second = views.grid(uow, "fan", limit=1, before=first["nextBefore"])
    assert first["tasks"] == [
        {"name": "extract", "fanOut": False},
        {"name": "transform", "fanOut": True},
        {"name": "cleanup", "fanOut": False},
    ]
    assert [run["id"] for run in first["runs"]] == [newer.id]
    assert first["cells"] == {str(newer.id): {}}
    assert second["cells"] == {
        str(older.id): {"extract": {"succeeded": 1}, "transform": {"running": 3}}
    }
    assert second["nextBefore"] is None


def test_the_graph_has_dependencies_trigger_rules_fan_out_and_counts(store: Store) -> None:
    (run,) = make_runs(store, 1)
    add(store, run, "transform", 3, TaskState.FAILED)
    with store.transaction() as uow:
        tasks = {task["name"]: task for task in views.graph(uow, run.id)["tasks"]}
    assert tasks["transform"] == {
        "name": "transform",
        "dependsOn": ["extract"],
        "triggerRule": "allSuccess",
        "fanOut": True,
        "instances": 3,
        "counts": {"failed": 3},
    }
    assert tasks["cleanup"]["triggerRule"] == "allDone"
    assert tasks["extract"]["counts"] == {}


def test_instances_come_a_page_at_a_time(store: Store) -> None:
    (run,) = make_runs(store, 1)
    add(store, run, "transform", 3, TaskState.PENDING)
    with store.transaction() as uow:
        page = views.instances(uow, run.id, task_name="transform", limit=2, offset=2)
    assert page["total"] == 3
    assert [(row["task"], row["itemIndex"]) for row in page["tasks"]] == [("transform", 2)]


@pytest.mark.parametrize(
    "ask",
    [
        lambda uow: views.grid(uow, "nope", limit=5, before=None),
        lambda uow: views.graph(uow, 999),
        lambda uow: views.instances(uow, 999, task_name=None, limit=5, offset=0),
    ],
)
def test_an_unknown_dag_or_run_is_not_found(store: Store, ask: Any) -> None:
    with store.transaction() as uow, pytest.raises(views.NotFoundError):
        ask(uow)


def test_instances_come_in_dependency_order(store: Store) -> None:
    (run,) = make_runs(store, 1)
    for task in ("cleanup", "transform", "extract"):
        add(store, run, task, 1, TaskState.PENDING)
    with store.transaction() as uow:
        page = views.instances(uow, run.id, task_name=None, limit=10, offset=0)
    assert [row["task"] for row in page["tasks"]] == ["extract", "transform", "cleanup"]
