"""Queuing operators' requests on runs: checked now, applied by the leading engine.

A request is checked against the run as it is (the same checks the engine repeats when
it applies it), then written with an event naming who asked, in one transaction. The
caller may wait for the engine's answer; without a controller running, the request
waits in the database and is applied when one starts.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.engine.graph import GraphCache
from controller.runtime import actions
from controller.runtime.actions import ActionRefusedError, NotFoundError
from controller.store import ActionRequestRecord, Store, UnitOfWork
from controller.store.requests import PENDING

WAIT_POLL_SECONDS = 0.2

__all__ = [
    "ActionRefusedError",
    "NotFoundError",
    "Queued",
    "cli_requester",
    "request_cancel",
    "request_mark",
    "request_retry",
    "wait_for",
]


@dataclass(frozen=True)
class Queued:
    """A request waiting for the engine, or None when there was nothing left to do."""

    request: ActionRequestRecord | None
    message: str


def cli_requester() -> str:
    """Who asks, when the CLI asks: the local user at this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _queue(
    uow: UnitOfWork,
    *,
    kind: str,
    by: str,
    run_id: int,
    dag_name: str,
    what: str,
    task_name: str | None = None,
    item_index: int | None = None,
    options: dict[str, Any] | None = None,
) -> Queued:
    request = uow.add_request(
        kind=kind,
        requested_by=by,
        dag_name=dag_name,
        run_id=run_id,
        task_name=task_name,
        item_index=item_index,
        options=options,
    )
    uow.append_event(
        kind="action-requested",
        message=f"{what} requested by {by} (request {request.id})",
        dag_name=dag_name,
        run_id=run_id,
        task_name=task_name,
        item_index=item_index,
        data={"request": request.id, "kind": kind, "options": options or {}},
    )
    uow.notify_requests_pending()
    return Queued(request, f"{what} requested (request {request.id})")


def request_cancel(
    store: Store,
    run_id: int,
    *,
    by: str,
    task: str | None = None,
    item_index: int = 0,
    grace_seconds: int | None = None,
) -> Queued:
    """Cancel a run, or one task instance of a running run."""
    if grace_seconds is not None and grace_seconds < 0:
        raise ActionRefusedError("the grace period must be 0 seconds or more")
    options = {} if grace_seconds is None else {"grace_seconds": grace_seconds}
    with store.transaction() as uow:
        if task is None:
            plan = actions.check_cancel_run(uow, run_id)
            if plan.already:
                return Queued(None, f"run {run_id} is cancelled already")
            return _queue(
                uow,
                kind=actions.CANCEL_RUN,
                by=by,
                run_id=run_id,
                dag_name=plan.run.dag_name,
                what=f"cancel of run {run_id}",
                options=options,
            )
        task_plan = actions.check_cancel_task(uow, run_id, task, item_index, graphs=GraphCache(4))
        return _queue(
            uow,
            kind=actions.CANCEL_TASK,
            by=by,
            run_id=run_id,
            dag_name=task_plan.run.dag_name,
            what=f"cancel of {task}[{item_index}] in run {run_id}",
            task_name=task,
            item_index=item_index,
            options=options,
        )


def request_retry(
    store: Store,
    run_id: int,
    *,
    by: str,
    latest: bool = False,
    task: str | None = None,
    item_index: int | None = None,
) -> Queued:
    """Retry a finished run's failed instances, or one task (and item) and its downstream."""
    with store.transaction() as uow:
        plan = actions.check_retry_run(
            uow,
            run_id,
            graphs=GraphCache(4),
            latest_version=latest,
            task=task,
            item_index=item_index,
        )
        what = f"retry of run {run_id} ({len(plan.clear)} task instances"
        what += f", at {plan.revision[:12]})" if latest else ")"
        return _queue(
            uow,
            kind=actions.RETRY_RUN,
            by=by,
            run_id=run_id,
            dag_name=plan.run.dag_name,
            what=what,
            task_name=task,
            item_index=item_index,
            options={"latest": latest},
        )


def request_mark(
    store: Store,
    run_id: int,
    *,
    by: str,
    task: str,
    item_index: int = 0,
    state: str,
    result: str | None = None,
) -> Queued:
    """Mark a task instance succeeded (with a result) or failed."""
    options: dict[str, Any] = {"state": state}
    if result is not None:
        options["result"] = result
    with store.transaction() as uow:
        plan = actions.check_mark_task(
            uow, run_id, task, item_index, state=state, result=result, graphs=GraphCache(4)
        )
        return _queue(
            uow,
            kind=actions.MARK_TASK,
            by=by,
            run_id=run_id,
            dag_name=plan.run.dag_name,
            what=f"mark of {task}[{item_index}] in run {run_id} as {state}",
            task_name=task,
            item_index=item_index,
            options=options,
        )


def wait_for(
    store: Store,
    request_id: int,
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> ActionRequestRecord:
    """The request once the engine answered it; TimeoutError if none did within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        with store.transaction() as uow:
            request = uow.get_request(request_id)
        if request is None:
            raise NotFoundError(f"no request with id {request_id}")
        if request.state != PENDING:
            return request
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"request {request_id} is still pending after {timeout:g}s: is a controller "
                "running against this database? It is applied when one is"
            )
        sleep(WAIT_POLL_SECONDS)
