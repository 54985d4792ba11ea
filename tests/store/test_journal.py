"""The watch cursor commits with the state it produced; the event log appends and reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from controller.base.states import TaskState
from controller.store import DagRunRecord, NewTaskInstance, Store


class WatchCrashedError(RuntimeError):
    pass


def add_instance(store: Store, run: DagRunRecord) -> int:
    with store.transaction() as uow:
        (ti,) = uow.add_task_instances([NewTaskInstance(run_id=run.id, task_name="extract")])
    return ti.id


def test_the_cursor_round_trips_and_moves_forward(store: Store) -> None:
    with store.transaction() as uow:
        assert uow.get_cursor("jobs") is None
        uow.set_cursor("jobs", "100")
    with store.transaction() as uow:
        assert uow.get_cursor("jobs") == "100"
        uow.set_cursor("jobs", "250")
        assert uow.get_cursor("other") is None
    with store.transaction() as uow:
        assert uow.get_cursor("jobs") == "250"


def test_state_and_cursor_commit_together(store: Store, run: DagRunRecord) -> None:
    ti_id = add_instance(store, run)
    with store.transaction() as uow:
        assert uow.cas_task_state(ti_id, expected=TaskState.PENDING, new=TaskState.RUNNING)
        uow.set_cursor("jobs", "101")
    with store.transaction() as uow:
        (record,) = uow.get_task_instances([ti_id])
        assert uow.get_cursor("jobs") == "101"
    assert record is not None
    assert record.state is TaskState.RUNNING


def test_a_crash_inside_the_transaction_rolls_back_state_and_cursor(
    store: Store, run: DagRunRecord
) -> None:
    ti_id = add_instance(store, run)
    with store.transaction() as uow:
        uow.set_cursor("jobs", "100")

    def apply_event_then_crash() -> None:
        with store.transaction() as uow:
            assert uow.cas_task_state(ti_id, expected=TaskState.PENDING, new=TaskState.SUCCEEDED)
            uow.set_cursor("jobs", "101")
            uow.append_event(kind="task-succeeded", message="extract succeeded", run_id=run.id)
            raise WatchCrashedError

    with pytest.raises(WatchCrashedError):
        apply_event_then_crash()
    with store.transaction() as uow:
        (record,) = uow.get_task_instances([ti_id])
        assert uow.get_cursor("jobs") == "100"
        assert uow.list_events(run_id=run.id) == []
    assert record is not None
    assert record.state is TaskState.PENDING


def test_an_event_round_trips(store: Store) -> None:
    at = datetime(2026, 1, 1, 4, 0, tzinfo=timezone(timedelta(hours=1)))
    with store.transaction() as uow:
        written = uow.append_event(
            kind="task-failed",
            message="extract failed: exit code 1",
            dag_name="daily-sales",
            run_id=7,
            task_name="extract",
            item_index=0,
            try_number=2,
            data={"exitCode": 1, "reason": "Error"},
            at=at,
        )
    with store.transaction() as uow:
        (read,) = uow.list_events()
    assert read == written
    assert read.at == at
    assert read.at.tzinfo is UTC
    assert (read.kind, read.message) == ("task-failed", "extract failed: exit code 1")
    assert (read.dag_name, read.run_id, read.task_name) == ("daily-sales", 7, "extract")
    assert (read.item_index, read.try_number) == (0, 2)
    assert read.data == {"exitCode": 1, "reason": "Error"}


def test_events_are_read_in_order_and_filtered(store: Store) -> None:
    with store.transaction() as uow:
        ids = [
            uow.append_event(kind="dag-loaded", message="a", dag_name="daily-sales").id,
            uow.append_event(kind="run-created", message="b", dag_name="daily-sales", run_id=1).id,
            uow.append_event(kind="dag-loaded", message="c", dag_name="hourly").id,
            uow.append_event(kind="run-created", message="d", dag_name="hourly", run_id=2).id,
        ]
    with store.transaction() as uow:
        assert [e.id for e in uow.list_events()] == ids
        assert [e.id for e in uow.list_events(dag_name="hourly")] == ids[2:]
        assert [e.id for e in uow.list_events(run_id=1)] == [ids[1]]
        assert [e.id for e in uow.list_events(kind="dag-loaded")] == [ids[0], ids[2]]
        assert [e.id for e in uow.list_events(after_id=ids[1], limit=1)] == [ids[2]]
        assert uow.list_events(kind="dag-loaded")[0].data is None
