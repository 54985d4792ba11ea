"""The API's actions on runs: cancel, retry, mark and backfill, as the CLI does them.

Each reads its options from the JSON body, calls the same operation as `kubedag
cancel`/`retry`/`mark`, and answers 202 with the queued request (its id to poll at
``/api/v1/requests/ID``), or 200 when there was nothing left to do. The checks and
their words are the operations layer's: a refused action is a 409 with its reason.
"""

from __future__ import annotations

from typing import Any

from controller.operations.backfill import backfill as create_backfill
from controller.operations.requests import Queued, request_cancel, request_mark, request_retry
from controller.store import ActionRequestRecord, Store


class BadRequestError(ValueError):
    """The body is not what the action takes; the message names the field."""


_KINDS = {int: "an integer", str: "a string", bool: "true or false"}


def _optional(body: dict[str, Any], name: str, kind: type) -> Any:
    """The field `name` of the body, None when absent; BadRequestError when mistyped."""
    value = body.get(name)
    if value is None:
        return None
    # bool is an int in Python, not in JSON: true is no item index.
    matches = (
        isinstance(value, bool)
        if kind is bool
        else (isinstance(value, kind) and not isinstance(value, bool))
    )
    if not matches:
        raise BadRequestError(f"{name} must be {_KINDS[kind]}")
    return value


def request_json(request: ActionRequestRecord) -> dict[str, Any]:
    return {
        "id": request.id,
        "kind": request.kind,
        "dag": request.dag_name,
        "runId": request.run_id,
        "task": request.task_name,
        "itemIndex": request.item_index,
        "options": request.options,
        "requestedBy": request.requested_by,
        "requestedAt": request.requested_at.isoformat(),
        "state": request.state,
        "handledAt": None if request.handled_at is None else request.handled_at.isoformat(),
        "outcome": request.outcome,
    }


def answer(queued: Queued) -> tuple[int, dict[str, Any]]:
    if queued.request is None:
        return 200, {"message": queued.message, "request": None}
    return 202, {"message": queued.message, "request": request_json(queued.request)}


def cancel(store: Store, run_id: int, body: dict[str, Any], *, by: str) -> tuple[int, Any]:
    return answer(
        request_cancel(
            store,
            run_id,
            by=by,
            task=_optional(body, "task", str),
            item_index=_optional(body, "itemIndex", int) or 0,
            grace_seconds=_optional(body, "gracePeriodSeconds", int),
        )
    )


def retry(store: Store, run_id: int, body: dict[str, Any], *, by: str) -> tuple[int, Any]:
    task = _optional(body, "task", str)
    item_index = _optional(body, "itemIndex", int)
    if item_index is not None and task is None:
        raise BadRequestError("itemIndex needs task")
    return answer(
        request_retry(
            store,
            run_id,
            by=by,
            latest=bool(_optional(body, "latest", bool)),
            task=task,
            item_index=item_index,
        )
    )


def mark(
    store: Store, run_id: int, task: str, item_index: int, body: dict[str, Any], *, by: str
) -> tuple[int, Any]:
    state = _optional(body, "state", str)
    if state is None:
        raise BadRequestError('state is required: "succeeded" or "failed"')
    return answer(
        request_mark(
            store,
            run_id,
            by=by,
            task=task,
            item_index=item_index,
            state=state,
            result=_optional(body, "result", str),
        )
    )


def backfill(store: Store, dag: str, body: dict[str, Any], *, by: str) -> tuple[int, Any]:
    """201 with the runs of the range (200 for a dry run, which creates none)."""
    start, end = _optional(body, "from", str), _optional(body, "to", str)
    if start is None or end is None:
        raise BadRequestError('from and to are required: dates ("2026-03-01") or ISO times')
    dry_run = bool(_optional(body, "dryRun", bool))
    done = create_backfill(
        store,
        dag,
        start=start,
        end=end,
        by=by,
        max_active_runs=_optional(body, "maxActiveRuns", int),
        dry_run=dry_run,
    )
    created = {run.logical_date: run for run in done.created}
    runs = []
    for date in done.dates:
        run = created.get(date) or done.existing.get(date)
        runs.append(
            {
                "logicalDate": date.isoformat(),
                "id": None if run is None else run.id,
                "created": date in created,
            }
        )
    return (200 if dry_run else 201), {"dag": dag, "dryRun": dry_run, "runs": runs}
