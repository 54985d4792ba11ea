"""Batched compare-and-sets: the same outcome as one by one, and exactly one racing winner."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.base.states import FailureKind, TaskState
from controller.store import DagRunRecord, NewTaskInstance, StateChange, Store, TaskInstanceRecord

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
ROWS = 4
TASK_NAMES = itertools.count()
STATES = [
    TaskState.PENDING,
    TaskState.LAUNCHED,
    TaskState.RUNNING,
    TaskState.SUCCEEDED,
    TaskState.FAILED,
]
FIELD_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "node": st.sampled_from(["node-1", "node-2"]),
        "exit_code": st.integers(0, 3),
        "reason": st.sampled_from(["Error", "OOMKilled"]),
        "result": st.sampled_from(['{"n": 1}', "done"]),
        "failure_kind": st.sampled_from(list(FailureKind)),
        "started_at": st.just(NOW),
        "finished_at": st.just(NOW + timedelta(seconds=5)),
    },
)
CHANGES = st.lists(
    st.tuples(
        st.integers(0, ROWS - 1),
        st.sets(st.sampled_from(STATES), min_size=1),
        st.sampled_from(STATES),
        FIELD_VALUES,
    ),
    max_size=12,
)


def add_rows(store: Store, run: DagRunRecord, count: int) -> list[int]:
    """``count`` fresh PENDING rows (of a task name not used before in this run)."""
    task = f"t{next(TASK_NAMES)}"
    with store.transaction() as uow:
        records = uow.add_task_instances(
            [NewTaskInstance(run_id=run.id, task_name=task, item_index=i) for i in range(count)]
        )
    assert len(records) == count
    return [record.id for record in records]


def comparable(record: TaskInstanceRecord) -> tuple[object, ...]:
    return (
        record.state,
        record.node,
        record.exit_code,
        record.reason,
        record.result,
        record.failure_kind,
        record.started_at,
        record.finished_at,
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(initial=st.lists(st.sampled_from(STATES), min_size=ROWS, max_size=ROWS), plan=CHANGES)
def test_a_batch_decides_and_writes_as_one_by_one_would(
    store: Store,
    run: DagRunRecord,
    initial: list[TaskState],
    plan: list[tuple[int, set[TaskState], TaskState, dict[str, object]]],
) -> None:
    one_by_one = add_rows(store, run, ROWS)
    batched = add_rows(store, run, ROWS)
    with store.transaction() as uow:
        for ids in (one_by_one, batched):
            for ti_id, state in zip(ids, initial, strict=True):
                assert uow.cas_task_state(ti_id, expected=TaskState.PENDING, new=state)
    with store.transaction() as uow:
        expected_wins = [
            uow.cas_task_state(one_by_one[row], expected=states, new=new, **fields)  # type: ignore[arg-type]
            for row, states, new, fields in plan
        ]
    with store.transaction() as uow:
        wins = uow.cas_task_states(
            [
                StateChange(batched[row], expected=states, new=new, fields=fields)  # type: ignore[arg-type]
                for row, states, new, fields in plan
            ]
        )
    assert wins == expected_wins
    with store.transaction() as uow:
        after_one_by_one = [comparable(r) for r in uow.get_task_instances(one_by_one)]
        after_batch = [comparable(r) for r in uow.get_task_instances(batched)]
    assert after_batch == after_one_by_one


def test_unknown_rows_lose_and_an_empty_batch_does_nothing(store: Store, run: DagRunRecord) -> None:
    (ti_id,) = add_rows(store, run, 1)
    with store.transaction() as uow:
        assert uow.cas_task_states([]) == []
        wins = uow.cas_task_states(
            [
                StateChange(ti_id + 1000, expected=[TaskState.PENDING], new=TaskState.LAUNCHED),
                StateChange(ti_id, expected=[TaskState.PENDING], new=TaskState.LAUNCHED),
            ]
        )
    assert wins == [False, True]


def test_a_change_needs_an_expected_state() -> None:
    with pytest.raises(ValueError, match="at least one"):
        StateChange(1, expected=[], new=TaskState.LAUNCHED)


def test_of_racing_batches_exactly_one_wins_each_row(store: Store, run: DagRunRecord) -> None:
    ids = add_rows(store, run, 50)
    racers = 4
    barrier = threading.Barrier(racers)
    targets = [TaskState.LAUNCHED, TaskState.SKIPPED, TaskState.UPSTREAM_FAILED, TaskState.FAILED]

    def racer(new: TaskState) -> list[bool]:
        # Each racer goes through the rows in its own order; locks are taken in id order.
        order = ids[::-1] if new in (TaskState.SKIPPED, TaskState.FAILED) else ids
        barrier.wait(timeout=30)
        with store.transaction() as uow:
            wins = uow.cas_task_states(
                [StateChange(i, expected=[TaskState.PENDING], new=new) for i in order]
            )
        return wins if order is ids else wins[::-1]

    with ThreadPoolExecutor(racers) as pool:
        results = [f.result(timeout=60) for f in [pool.submit(racer, t) for t in targets]]
    with store.transaction() as uow:
        states = {r.id: r.state for r in uow.get_task_instances(ids)}
    for index, ti_id in enumerate(ids):
        winners = [targets[n] for n, wins in enumerate(results) if wins[index]]
        assert len(winners) == 1
        assert states[ti_id] is winners[0]


def test_a_waiting_batch_sees_what_the_first_writer_committed(
    store: Store, run: DagRunRecord
) -> None:
    first, second = add_rows(store, run, 2)
    outcome: list[list[bool]] = []

    def waiting_writer() -> None:
        with store.transaction() as uow:
            outcome.append(
                uow.cas_task_states(
                    [
                        StateChange(i, expected=[TaskState.PENDING], new=TaskState.SKIPPED)
                        for i in (first, second)
                    ]
                )
            )

    with store.transaction() as uow:
        assert uow.cas_task_state(first, expected=TaskState.PENDING, new=TaskState.LAUNCHED)
        writer = threading.Thread(target=waiting_writer)
        writer.start()
        writer.join(timeout=0.3)
        assert writer.is_alive(), "the batch must wait for the first writer to commit"
    writer.join(timeout=30)
    assert outcome == [[False, True]]
