"""Operator requests: queued by the CLI or the API, applied by the engine, answered here.

A request is written in the same transaction as the check that made it acceptable and
the event that shows it in the run's history, so an accepted request is never lost and
never shown without being queued. The engine takes pending ones oldest first and closes
each with a compare-and-set from pending, so a request is answered once even if two
engines (a leader and its successor, briefly) both read it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from controller.store.base import SessionBound, rowcount, utcnow
from controller.store.models import ActionRequest
from controller.store.records import ActionRequestRecord

PENDING = "pending"
DONE = "done"
REJECTED = "rejected"


def request_record(row: ActionRequest) -> ActionRequestRecord:
    return ActionRequestRecord(
        id=row.id,
        kind=row.kind,
        dag_name=row.dag_name,
        run_id=row.run_id,
        task_name=row.task_name,
        item_index=row.item_index,
        options=row.options,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        state=row.state,
        handled_at=row.handled_at,
        outcome=row.outcome,
    )


class RequestQueries(SessionBound):
    def add_request(
        self,
        *,
        kind: str,
        requested_by: str,
        dag_name: str | None = None,
        run_id: int | None = None,
        task_name: str | None = None,
        item_index: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> ActionRequestRecord:
        row = ActionRequest(
            kind=kind,
            dag_name=dag_name,
            run_id=run_id,
            task_name=task_name,
            item_index=item_index,
            options=options or {},
            requested_by=requested_by,
            requested_at=utcnow(),
            state=PENDING,
        )
        self._session.add(row)
        self._session.flush()
        return request_record(row)

    def get_request(self, request_id: int) -> ActionRequestRecord | None:
        row = self._session.get(ActionRequest, request_id, populate_existing=True)
        return None if row is None else request_record(row)

    def pending_requests(self, *, limit: int = 100) -> list[ActionRequestRecord]:
        """Pending requests, oldest first."""
        stmt = (
            select(ActionRequest)
            .where(ActionRequest.state == PENDING)
            .order_by(ActionRequest.id)
            .limit(limit)
            .execution_options(populate_existing=True)
        )
        return [request_record(row) for row in self._session.scalars(stmt)]

    def close_request(
        self, request_id: int, *, state: str, outcome: str, at: datetime | None = None
    ) -> bool:
        """Answer a pending request (done or rejected); False if it was answered already."""
        stmt = (
            update(ActionRequest)
            .where(ActionRequest.id == request_id, ActionRequest.state == PENDING)
            .values(state=state, outcome=outcome, handled_at=at or utcnow())
            .execution_options(synchronize_session=False)
        )
        return rowcount(self._session.execute(stmt)) == 1
