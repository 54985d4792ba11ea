"""The engine's side of operators' requests: take the pending ones, apply, answer each.

A request is applied in one transaction with its answer, except one that stops pods:
its answer waits until the engine has asked the executor to stop them (`act`), so a
crash in between leaves it pending and the next engine applies it again, which only
stops the same pods again. A request the run no longer allows is answered `rejected`
with the reason, and an event says so in the run's history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from controller.engine.graph import GraphCache
from controller.runtime.actions import ActionRefusedError, Applied, apply_request
from controller.store import ActionRequestRecord, Store
from controller.store.requests import DONE, REJECTED

log = logging.getLogger(__name__)

REQUEST_BATCH = 100


def apply_pending(
    store: Store, *, now: datetime, graphs: GraphCache, act: Callable[[Applied], None]
) -> bool:
    """Apply the pending requests, oldest first; whether there were any."""
    with store.transaction() as uow:
        pending = uow.pending_requests(limit=REQUEST_BATCH)
    for request in pending:
        _apply_one(store, request, now=now, graphs=graphs, act=act)
    return bool(pending)


def _apply_one(
    store: Store,
    request: ActionRequestRecord,
    *,
    now: datetime,
    graphs: GraphCache,
    act: Callable[[Applied], None],
) -> None:
    where = {"run": request.run_id, "request": request.id, "kind": request.kind}
    try:
        with store.transaction() as uow:
            applied = apply_request(uow, request, now=now, graphs=graphs)
            if not applied.stops:
                uow.close_request(request.id, state=DONE, outcome=applied.outcome, at=now)
    except ActionRefusedError as refusal:
        with store.transaction() as uow:
            if uow.close_request(request.id, state=REJECTED, outcome=str(refusal), at=now):
                uow.append_event(
                    kind="request-rejected",
                    message=f"{request.kind} request {request.id} by "
                    f"{request.requested_by} rejected: {refusal}",
                    dag_name=request.dag_name,
                    run_id=request.run_id,
                    at=now,
                )
        log.info("request %d rejected: %s", request.id, refusal, extra=where)
        return
    act(applied)
    if applied.stops:
        with store.transaction() as uow:
            uow.close_request(request.id, state=DONE, outcome=applied.outcome, at=now)
    log.info("request %d applied: %s", request.id, applied.outcome, extra=where)
