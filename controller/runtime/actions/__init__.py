"""Operators' requests on runs (cancel, retry, mark), checked and applied inside a transaction.

Each kind is split in two: `check_*` reads the run and decides what the request would
change, refusing (ActionRefusedError, with a message for the user) what makes no sense:
cancelling a finished run, retrying a running one, an unknown task. The CLI and the API
call the check before queuing a request, so a user learns at once; the engine calls it
again when it applies the request in its loop (the run may have moved on meanwhile) and
then writes the changes, in the same transaction as the request's answer.

The engine is the only writer because it holds the planners of running runs: a change
under a running run is followed by rebuilding its planner from the rows, and a finished
run that is retried goes back to QUEUED, so it starts within maxActiveRuns like any run
and is planned from its rows (CLEARED ones included) when it does.

Every apply is idempotent: applying a request again after a crash finds the run already
moved, and a cancel of a cancelled run only stops its pods again.
"""

from __future__ import annotations

from datetime import datetime

from controller.engine.graph import GraphCache
from controller.runtime.actions.cancel import (
    CancelRun,
    CancelTask,
    apply_cancel_run,
    apply_cancel_task,
    check_cancel_run,
    check_cancel_task,
)
from controller.runtime.actions.common import (
    ActionRefusedError,
    Applied,
    NotFoundError,
    latest_tries,
    require_run,
)
from controller.runtime.actions.mark import (
    MarkTask,
    apply_mark_task,
    check_mark_task,
)
from controller.runtime.actions.retry import (
    RetryRun,
    apply_retry_run,
    check_retry_run,
)
from controller.store import ActionRequestRecord, UnitOfWork

__all__ = [
    "CANCEL_RUN",
    "CANCEL_TASK",
    "KINDS",
    "MARK_TASK",
    "RETRY_RUN",
    "ActionRefusedError",
    "Applied",
    "CancelRun",
    "CancelTask",
    "MarkTask",
    "NotFoundError",
    "RetryRun",
    "apply_cancel_run",
    "apply_cancel_task",
    "apply_mark_task",
    "apply_request",
    "apply_retry_run",
    "check_cancel_run",
    "check_cancel_task",
    "check_mark_task",
    "check_retry_run",
    "latest_tries",
    "require_run",
]

CANCEL_RUN = "cancel-run"
CANCEL_TASK = "cancel-task"
RETRY_RUN = "retry-run"
MARK_TASK = "mark-task"
KINDS = (CANCEL_RUN, CANCEL_TASK, RETRY_RUN, MARK_TASK)


def apply_request(
    uow: UnitOfWork, request: ActionRequestRecord, *, now: datetime, graphs: GraphCache
) -> Applied:
    """Apply one pending request inside `uow`; raises ActionRefusedError to reject it."""
    if request.kind == CANCEL_RUN:
        return apply_cancel_run(uow, request, now=now)
    if request.kind == CANCEL_TASK:
        return apply_cancel_task(uow, request, now=now, graphs=graphs)
    if request.kind == RETRY_RUN:
        return apply_retry_run(uow, request, now=now, graphs=graphs)
    if request.kind == MARK_TASK:
        return apply_mark_task(uow, request, now=now, graphs=graphs)
    raise ActionRefusedError(f"unknown request kind {request.kind!r} (known: {', '.join(KINDS)})")
