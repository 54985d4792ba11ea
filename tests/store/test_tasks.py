"""TaskInstances: idempotent creation, CAS that exactly one racing writer wins, queries."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from controller.base.states import DagRunState, FailureKind, RunType, TaskState
from controller.store import DagRunRecord, NewTaskInstance, Store
from tests.store.rows import LOGICAL_DATE, SPEC, add_dag

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
RACERS = 6


def start(store: Store, run: DagRunRecord) -> None:
    with store.transaction() as uow:
        assert uow.cas_run_state(run.id, expected=DagRunState.QUEUED, new=DagRunState.RUNNING)


def add_one(store: Store, run: DagRunRecord, **overrides: object) -> int:
    with store.transaction() as uow:
        (record,) = uow.add_task_instances(
            [NewTaskInstance(run_id=run.id, task_name="extract", **overrides)]  # type: ignore[arg-type]
        )
    return record.id


def test_a_task_instance_round_trips_with_every_field(store: Store, run: DagRunRecord) -> None:
    retry_at = NOW + timedelta(seconds=30)
    with store.transaction() as uow:
        (created,) = uow.add_task_instances(
            [
                NewTaskInstance(
                    run_id=run.id,
                    task_name="transform",
                    item_index=1,
                    item={"table": "refunds"},
                    try_number=2,
                    not_before=retry_at,
                )
            ]
        )
        assert uow.cas_task_state(
            created.id,
            expected=TaskState.PENDING,
            new=TaskState.FAILED,
            failure_kind=FailureKind.INFRA,
            pod_name="daily-sales-1-transform-1-2",
            namespace="jobs",
            node="node-1",
            exit_code=137,
            reason="OOMKilled",
            message="out of memory",
            result='{"rows": 3}',
            launched_at=NOW,
            started_at=NOW + timedelta(seconds=1),
            finished_at=NOW + timedelta(seconds=2),
        )
        (record,) = uow.get_task_instances([created.id])
    assert created.state is TaskState.PENDING
    assert created.not_before == retry_at
    assert record is not None
    assert (record.run_id, record.dag_name, record.task_name) == (
        run.id,
        "daily-sales",
        "transform",
    )
    assert (record.item_index, record.item, record.try_number) == (1, {"table": "refunds"}, 2)
    assert record.state is TaskState.FAILED
    assert record.failure_kind is FailureKind.INFRA
    assert (record.pod_name, record.namespace, record.node) == (
        "daily-sales-1-transform-1-2",
        "jobs",
        "node-1",
    )
    assert (record.exit_code, record.reason, record.message) == (137, "OOMKilled", "out of memory")
    assert record.result == '{"rows": 3}'
    assert record.launched_at == NOW
    assert record.started_at == NOW + timedelta(seconds=1)
    assert record.finished_at == NOW + timedelta(seconds=2)
    for stamp in (record.created_at, record.updated_at, record.not_before, record.launched_at):
        assert stamp is not None
        assert stamp.tzinfo is UTC


def test_an_instance_without_items_has_item_index_zero_and_no_item(
    store: Store, run: DagRunRecord
) -> None:
    ti_id = add_one(store, run)
    with store.transaction() as uow:
        (record,) = uow.get_task_instances([ti_id])
    assert record is not None
    assert (record.item_index, record.item, record.try_number) == (0, None, 1)
    assert record.failure_kind is None


def test_adding_instances_again_creates_only_the_new_ones(store: Store, run: DagRunRecord) -> None:
    first = [NewTaskInstance(run_id=run.id, task_name="transform", item_index=i) for i in range(2)]
    with store.transaction() as uow:
        assert len(uow.add_task_instances(first)) == 2
    again = [*first, NewTaskInstance(run_id=run.id, task_name="transform", item_index=2)]
    with store.transaction() as uow:
        created = uow.add_task_instances(again)
        assert [(ti.task_name, ti.item_index) for ti in created] == [("transform", 2)]
        assert len(uow.list_task_instances(run.id)) == 3


def test_a_wide_fan_out_is_created_in_batches(store: Store, run: DagRunRecord) -> None:
    wide = [
        NewTaskInstance(run_id=run.id, task_name="transform", item_index=i, item=i)
        for i in range(1234)
    ]
    with store.transaction() as uow:
        created = uow.add_task_instances(wide)
    assert [ti.item for ti in created] == list(range(1234))


def test_a_retry_is_a_new_row_with_the_next_try_number(store: Store, run: DagRunRecord) -> None:
    add_one(store, run)
    add_one(store, run, try_number=2)
    with store.transaction() as uow:
        tries = uow.list_task_instances(run.id)
    assert [ti.try_number for ti in tries] == [1, 2]


def test_two_instances_cannot_share_a_pod_name(store: Store, run: DagRunRecord) -> None:
    add_one(store, run, pod_name="pod-a")
    with pytest.raises(IntegrityError):
        add_one(store, run, try_number=2, pod_name="pod-a")


def test_an_instance_is_found_by_its_pod_name(store: Store, run: DagRunRecord) -> None:
    ti_id = add_one(store, run, pod_name="pod-a")
    with store.transaction() as uow:
        (found,) = uow.find_task_instances_by_pods(["pod-a"])
        assert uow.find_task_instances_by_pods(["pod-b"]) == []
    assert found is not None
    assert found.id == ti_id


def test_instances_are_read_by_id_in_one_call(store: Store, run: DagRunRecord) -> None:
    first = add_one(store, run)
    second = add_one(store, run, try_number=2)
    with store.transaction() as uow:
        found = uow.get_task_instances([second, first, second, 999_999])
    assert [(record.id, record.try_number) for record in found] == [(first, 1), (second, 2)]


def test_cas_fails_from_an_unexpected_state(store: Store, run: DagRunRecord) -> None:
    ti_id = add_one(store, run)
    with store.transaction() as uow:
        assert not uow.cas_task_state(ti_id, expected=TaskState.RUNNING, new=TaskState.SUCCEEDED)
        assert uow.cas_task_state(
            ti_id, expected=[TaskState.PENDING, TaskState.LAUNCHED], new=TaskState.LAUNCHED
        )
        (record,) = uow.get_task_instances([ti_id])
    assert record is not None
    assert record.state is TaskState.LAUNCHED


def test_cas_needs_an_expected_state(store: Store, run: DagRunRecord) -> None:
    ti_id = add_one(store, run)
    with store.transaction() as uow, pytest.raises(ValueError, match="at least one"):
        uow.cas_task_state(ti_id, expected=[], new=TaskState.LAUNCHED)


def test_a_second_writer_waiting_on_the_first_loses_once_it_commits(
    store: Store, run: DagRunRecord
) -> None:
    ti_id = add_one(store, run)
    outcome: list[bool] = []

    def second_writer() -> None:
        with store.transaction() as uow:
            outcome.append(
                uow.cas_task_state(ti_id, expected=TaskState.PENDING, new=TaskState.SKIPPED)
            )

    with store.transaction() as uow:
        assert uow.cas_task_state(ti_id, expected=TaskState.PENDING, new=TaskState.LAUNCHED)
        writer = threading.Thread(target=second_writer)
        writer.start()
        writer.join(timeout=0.3)
        assert writer.is_alive(), "the second writer must wait for the first to commit"
    writer.join(timeout=30)
    assert outcome == [False]
    with store.transaction() as uow:
        (record,) = uow.get_task_instances([ti_id])
    assert record is not None
    assert record.state is TaskState.LAUNCHED


def test_of_racing_writers_exactly_one_wins(store: Store, run: DagRunRecord) -> None:
    ti_id = add_one(store, run)
    barrier = threading.Barrier(RACERS)
    targets = [TaskState.LAUNCHED, TaskState.SKIPPED, TaskState.UPSTREAM_FAILED] * 2

    def racer(new: TaskState) -> bool:
        barrier.wait(timeout=30)
        with store.transaction() as uow:
            return uow.cas_task_state(ti_id, expected=TaskState.PENDING, new=new)

    with ThreadPoolExecutor(RACERS) as pool:
        wins = [future.result(timeout=60) for future in [pool.submit(racer, t) for t in targets]]
    assert sum(wins) == 1
    with store.transaction() as uow:
        (record,) = uow.get_task_instances([ti_id])
    assert record is not None
    assert record.state is targets[wins.index(True)]


def test_active_instances_are_listed_by_state(store: Store, run: DagRunRecord) -> None:
    ids = [add_one(store, run, try_number=n) for n in (1, 2, 3)]
    with store.transaction() as uow:
        uow.cas_task_state(ids[0], expected=TaskState.PENDING, new=TaskState.LAUNCHED)
        uow.cas_task_state(ids[1], expected=TaskState.PENDING, new=TaskState.RUNNING)
    with store.transaction() as uow:
        owned = uow.list_task_instances_in_states([TaskState.LAUNCHED, TaskState.RUNNING])
    assert [ti.id for ti in owned] == ids[:2]


def second_run(store: Store, *, dag_name: str, logical_date: datetime) -> DagRunRecord:
    add_dag(store, dag_name)
    with store.transaction() as uow:
        record, _ = uow.create_run(
            dag_name=dag_name,
            logical_date=logical_date,
            run_type=RunType.SCHEDULED,
            revision="a" * 40,
            spec=SPEC,
            state=DagRunState.RUNNING,
        )
    return record


def test_pending_instances_are_listed_oldest_run_first_due_or_not(
    store: Store, run: DagRunRecord
) -> None:
    start(store, run)
    earlier = second_run(store, dag_name="daily-sales", logical_date=LOGICAL_DATE - timedelta(1))
    later_retry = add_one(store, run, not_before=NOW + timedelta(hours=1))
    earlier_first = add_one(store, earlier)
    other_dag = add_one(store, second_run(store, dag_name="hourly", logical_date=LOGICAL_DATE))
    with store.transaction() as uow:
        assert [ti.id for ti in uow.list_pending(dag_name="daily-sales")] == [
            earlier_first,
            later_retry,
        ]
        assert [ti.id for ti in uow.list_pending()] == [earlier_first, later_retry, other_dag]
        assert [ti.id for ti in uow.list_pending(limit=1)] == [earlier_first]


def test_an_instance_can_be_recorded_already_finished(store: Store, run: DagRunRecord) -> None:
    with store.transaction() as uow:
        (skipped,) = uow.add_task_instances(
            [
                NewTaskInstance(
                    run_id=run.id, task_name="load", state=TaskState.SKIPPED, finished_at=NOW
                )
            ]
        )
    assert skipped.state is TaskState.SKIPPED
    assert skipped.finished_at == NOW
