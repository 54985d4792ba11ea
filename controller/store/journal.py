"""The watch cursor and the append-only event log.

The cursor is the pod watch's resourceVersion per namespace. It is written through the
same unit of work as the task states an event produced, so after a crash the watch
resumes exactly after the last event whose effects were committed: an event is never
applied twice nor skipped. Writing it is an upsert, so the first write for a namespace
and every later one are the same statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from controller.store.base import SessionBound, utcnow
from controller.store.models import Event, WatchCursor
from controller.store.records import EventRecord, NewEvent


def event_record(row: Event) -> EventRecord:
    return EventRecord(
        id=row.id,
        at=row.at,
        kind=row.kind,
        message=row.message,
        dag_name=row.dag_name,
        run_id=row.run_id,
        task_name=row.task_name,
        item_index=row.item_index,
        try_number=row.try_number,
        data=row.data,
    )


class JournalQueries(SessionBound):
    def get_cursor(self, namespace: str) -> str | None:
        row = self._session.get(WatchCursor, namespace, populate_existing=True)
        return None if row is None else row.resource_version

    def set_cursor(self, namespace: str, resource_version: str) -> None:
        now = utcnow()
        stmt = (
            self._insert(WatchCursor)
            .values(namespace=namespace, resource_version=resource_version, updated_at=now)
            .on_conflict_do_update(
                index_elements=[WatchCursor.namespace],
                set_={"resource_version": resource_version, "updated_at": now},
            )
        )
        self._session.execute(stmt)

    def append_event(
        self,
        *,
        kind: str,
        message: str,
        dag_name: str | None = None,
        run_id: int | None = None,
        task_name: str | None = None,
        item_index: int | None = None,
        try_number: int | None = None,
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> EventRecord:
        # RETURNING reads the row back through the column types, so `at` comes back
        # in UTC whatever zone it was given in.
        stmt = (
            insert(Event)
            .values(
                at=at or utcnow(),
                kind=kind,
                message=message,
                dag_name=dag_name,
                run_id=run_id,
                task_name=task_name,
                item_index=item_index,
                try_number=try_number,
                data=data,
            )
            .returning(Event)
        )
        return event_record(self._session.scalars(stmt).one())

    def append_events(self, events: Sequence[NewEvent]) -> None:
        """Append many events in one statement; nothing is read back, so nothing returned.

        The watch appends one event per finished try; one statement for a batch of them
        costs a fraction of a statement each.
        """
        if events:
            self._session.execute(
                insert(Event),
                [
                    {
                        "at": event.at,
                        "kind": event.kind,
                        "message": event.message,
                        "dag_name": event.dag_name,
                        "run_id": event.run_id,
                        "task_name": event.task_name,
                        "item_index": event.item_index,
                        "try_number": event.try_number,
                        "data": None,
                    }
                    for event in events
                ],
            )

    def last_event_id(self) -> int:
        """The newest event's id, 0 when there is none: where a follower starts."""
        return int(self._session.execute(select(func.max(Event.id))).scalar_one() or 0)

    def list_events(
        self,
        *,
        dag_name: str | None = None,
        run_id: int | None = None,
        kind: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Oldest first; pass the last id seen as `after_id` to read on."""
        stmt = select(Event).order_by(Event.id).limit(limit)
        if dag_name is not None:
            stmt = stmt.where(Event.dag_name == dag_name)
        if run_id is not None:
            stmt = stmt.where(Event.run_id == run_id)
        if kind is not None:
            stmt = stmt.where(Event.kind == kind)
        if after_id is not None:
            stmt = stmt.where(Event.id > after_id)
        return [event_record(row) for row in self._session.scalars(stmt)]
