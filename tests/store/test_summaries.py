"""Pages of runs and state counts of latest tries: what the web UI reads at scale."""

from __future__ import annotations

from datetime import timedelta

from controller.base.states import RunType, TaskState
from controller.store import DagRunRecord, NewTaskInstance, Store
from tests.store.rows import LOGICAL_DATE, SPEC, add_dag


def runs(store: Store, count: int, *, dag: str = "daily-sales") -> list[DagRunRecord]:
    with store.transaction() as uow:
        return [
            uow.create_run(
                dag_name=dag,
                logical_date=LOGICAL_DATE + timedelta(days=day),
                run_type=RunType.SCHEDULED,
                revision="a" * 40,
                spec=SPEC,
            )[0]
            for day in range(count)
        ]


def set_state(store: Store, run_id: int, task: str, item: int, tries: list[TaskState]) -> None:
    """Tries 1..n of one instance, ending in the given states."""
    with store.transaction() as uow:
        created = uow.add_task_instances(
            NewTaskInstance(run_id=run_id, task_name=task, item_index=item, try_number=number)
            for number in range(1, len(tries) + 1)
        )
        for record, state in zip(created, tries, strict=True):
            if state is not TaskState.PENDING:
                assert uow.cas_task_state(record.id, expected=TaskState.PENDING, new=state)


def test_runs_come_a_page_at_a_time_newest_first(store: Store) -> None:
    add_dag(store)
    created = runs(store, 5)
    with store.transaction() as uow:
        first = uow.runs_page("daily-sales", limit=2)
        second = uow.runs_page("daily-sales", limit=2, before=first.next_before)
        last = uow.runs_page("daily-sales", limit=2, before=second.next_before)
    ids = [run.id for run in reversed(created)]
    assert [run.id for run in first.runs] == ids[:2]
    assert [run.id for run in second.runs] == ids[2:4]
    assert [run.id for run in last.runs] == ids[4:]
    assert last.next_before is None


def test_a_page_of_runs_is_stable_while_new_runs_arrive(store: Store) -> None:
    add_dag(store)
    runs(store, 3)
    with store.transaction() as uow:
        first = uow.runs_page("daily-sales", limit=2)
        uow.create_run(
            dag_name="daily-sales",
            logical_date=LOGICAL_DATE + timedelta(days=30),
            run_type=RunType.MANUAL,
            revision="a" * 40,
            spec=SPEC,
        )
        second = uow.runs_page("daily-sales", limit=2, before=first.next_before)
    assert [run.logical_date for run in second.runs] == [LOGICAL_DATE]


def test_a_run_of_another_dag_is_no_anchor_for_a_page(store: Store) -> None:
    add_dag(store)
    add_dag(store, "other")
    (other,) = runs(store, 1, dag="other")
    runs(store, 2)
    with store.transaction() as uow:
        page = uow.runs_page("daily-sales", limit=5, before=other.id)
    assert page.runs == []


def test_state_counts_count_only_the_latest_try_of_each_instance(store: Store) -> None:
    add_dag(store)
    run, idle = runs(store, 2)
    set_state(store, run.id, "extract", 0, [TaskState.FAILED, TaskState.SUCCEEDED])
    for item in range(3):
        set_state(store, run.id, "transform", item, [TaskState.RUNNING])
    set_state(store, run.id, "transform", 3, [TaskState.FAILED, TaskState.FAILED])
    with store.transaction() as uow:
        counts = uow.task_state_counts([run.id, idle.id])
    assert counts == {
        run.id: {
            "extract": {TaskState.SUCCEEDED: 1},
            "transform": {TaskState.RUNNING: 3, TaskState.FAILED: 1},
        },
        idle.id: {},
    }


def test_latest_instances_come_a_page_at_a_time_with_the_total(store: Store) -> None:
    add_dag(store)
    (run,) = runs(store, 1)
    set_state(store, run.id, "extract", 0, [TaskState.FAILED, TaskState.SUCCEEDED])
    for item in range(5):
        set_state(store, run.id, "transform", item, [TaskState.PENDING])
    with store.transaction() as uow:
        everything = uow.latest_instances(run.id, limit=3)
        fan_out = uow.latest_instances(run.id, task_name="transform", limit=3, offset=3)
    assert everything.total == 6
    assert [(r.task_name, r.item_index, r.try_number) for r in everything.instances] == [
        ("extract", 0, 2),
        ("transform", 0, 1),
        ("transform", 1, 1),
    ]
    assert fan_out.total == 5
    assert [r.item_index for r in fan_out.instances] == [3, 4]


def test_latest_instances_follow_the_given_task_order(store: Store) -> None:
    add_dag(store)
    (run,) = runs(store, 1)
    for task in ("load", "extract", "zz-unlisted", "transform"):
        set_state(store, run.id, task, 0, [TaskState.PENDING])
    with store.transaction() as uow:
        page = uow.latest_instances(run.id, limit=10, task_order=["extract", "transform", "load"])
    assert [r.task_name for r in page.instances] == ["extract", "transform", "load", "zz-unlisted"]
