"""`kubedag dev`'s progress lines come in the order the changes happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.base.states import TaskState
from controller.cli.dev import progress_updates
from controller.store import TaskInstanceRecord

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def row(row_id: int, task: str, state: TaskState, *, at: float | None) -> TaskInstanceRecord:
    moment = None if at is None else T0 + timedelta(seconds=at)
    finished = moment if state.finished else None
    return TaskInstanceRecord(
        id=row_id,
        run_id=1,
        dag_name="d",
        task_name=task,
        item_index=0,
        item=None,
        try_number=1,
        state=state,
        failure_kind=None,
        pod_name=None,
        namespace=None,
        node=None,
        exit_code=None,
        reason=None,
        message=None,
        result=None,
        not_before=None,
        created_at=T0,
        launched_at=moment,
        started_at=moment,
        finished_at=finished,
        updated_at=moment or T0,
    )


def test_changes_seen_in_one_poll_are_told_in_the_order_they_happened() -> None:
    # The downstream's row is the older one (a retry of the upstream made a new row).
    rows = [
        row(1, "load", TaskState.SUCCEEDED, at=9),
        row(2, "extract", TaskState.SUCCEEDED, at=5),
        row(3, "report", TaskState.PENDING, at=None),
    ]
    shown: dict[int, str] = {}
    assert progress_updates(rows, shown) == [
        "report try 1: pending",
        "extract try 1: succeeded",
        "load try 1: succeeded",
    ]


def test_only_rows_that_changed_since_the_last_poll_are_told() -> None:
    shown: dict[int, str] = {}
    progress_updates([row(1, "a", TaskState.RUNNING, at=1)], shown)
    rows = [row(1, "a", TaskState.RUNNING, at=1), row(2, "b", TaskState.RUNNING, at=2)]
    assert progress_updates(rows, shown) == ["b try 1: running"]
    assert progress_updates(rows, shown) == []
