"""Committing an executor's observations: the transaction behind `UpdateSink.apply`.

Every update is a compare-and-set from the states it may follow (a try is seen running
only after it was launched; it finishes only from launched or running), so a watch
event replayed after a restart, or one another controller already applied, changes
nothing and is dropped rather than applied twice. The cursor and the events are written
in the same transaction as the states, which is what lets the watch resume exactly
after the last event whose effects were stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from controller.base.states import FailureKind, TaskState
from controller.engine.records import TaskInstanceView
from controller.engine.seam import CursorUpdate, TaskUpdate
from controller.store import NewEvent, StateChange, TaskInstanceRecord, UnitOfWork
from controller.store.tasks import TaskFields

log = logging.getLogger(__name__)

ALLOWED_FROM: dict[TaskState, tuple[TaskState, ...]] = {
    TaskState.RUNNING: (TaskState.LAUNCHED,),
    TaskState.SUCCEEDED: (TaskState.LAUNCHED, TaskState.RUNNING),
    TaskState.FAILED: (TaskState.LAUNCHED, TaskState.RUNNING),
}


def update_fields(update: TaskUpdate, *, now: datetime) -> TaskFields:
    """The columns an update sets beside its state; unknown values are left untouched."""
    fields: TaskFields = {}
    if update.node is not None:
        fields["node"] = update.node
    if update.started_at is not None or update.state is TaskState.RUNNING:
        fields["started_at"] = update.started_at or now
    if update.state.finished:
        fields["finished_at"] = update.finished_at or now
        fields["exit_code"] = update.exit_code
        fields["reason"] = update.reason
        fields["message"] = update.message
    if update.state is TaskState.SUCCEEDED:
        fields["result"] = update.result
    if update.state is TaskState.FAILED:
        fields["failure_kind"] = update.failure_kind or FailureKind.TASK
    return fields


def commit_updates(
    uow: UnitOfWork,
    updates: Sequence[TaskUpdate],
    *,
    cursor: CursorUpdate | None,
    now: datetime,
) -> list[TaskInstanceRecord]:
    """CAS each update inside `uow`, set the cursor, log events; the rows that changed."""
    changes: list[StateChange] = []
    for update in updates:
        allowed = ALLOWED_FROM.get(update.state)
        if allowed is None:
            log.warning(
                "dropped an update to %s: executors report running, succeeded or failed only",
                update.state,
                extra={"task_instance": update.task_instance_id},
            )
            continue
        changes.append(
            StateChange(
                update.task_instance_id,
                expected=allowed,
                new=update.state,
                fields=update_fields(update, now=now),
            )
        )
    won = uow.cas_task_states(changes)
    changed = [change.ti_id for change, ok in zip(changes, won, strict=True) if ok]
    if cursor is not None:
        uow.set_cursor(cursor.namespace, cursor.resource_version)
    records = uow.get_task_instances(changed)
    uow.append_events(
        [
            NewEvent(
                kind=f"task-{record.state.value}",
                message=_describe(record),
                dag_name=record.dag_name,
                run_id=record.run_id,
                task_name=record.task_name,
                item_index=record.item_index,
                try_number=record.try_number,
                at=now,
            )
            for record in records
            if record.state.finished
        ]
    )
    return records


def view_of(record: TaskInstanceRecord) -> TaskInstanceView:
    """A row as the planner reads it."""
    return TaskInstanceView(
        task=record.task_name,
        item_index=record.item_index,
        try_number=record.try_number,
        state=record.state,
        failure_kind=record.failure_kind,
        result=record.result,
        finished_at=record.finished_at,
        not_before=record.not_before,
        marked=record.set_by is not None,
        item=record.item,
    )


def _describe(record: TaskInstanceRecord) -> str:
    what = f"{record.key} {record.state}"
    if record.state is TaskState.FAILED:
        detail = ": ".join(part for part in (record.reason, record.message) if part)
        kind = record.failure_kind.value if record.failure_kind else FailureKind.TASK.value
        return f"{what} ({kind} failure){': ' + detail if detail else ''}"
    return what
