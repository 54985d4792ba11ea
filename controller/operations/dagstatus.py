"""Every DAG's state, last and next run, and why invalid ones are: for the CLI and the UI.

Read from the database only, never the cluster or git, so it answers the same whether
the controller is up, down or failing over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controller.spec.model import dag_from_dict
from controller.spec.schedule import ScheduleError, next_fire_times
from controller.store import DagRecord, Store


@dataclass(frozen=True)
class DagStatus:
    name: str
    state: str
    """active, paused, invalid or deleted"""
    path: str
    revision: str
    running_revision: str | None
    schedule: str | None
    last_run_state: str | None
    last_run_logical_date: str | None
    next_run: str | None
    error: str | None
    paused_by: str | None = None
    """Who paused it: "git" (spec.paused) or the operator who ran `kubedag pause`."""


def dag_state(record: DagRecord) -> str:
    if record.deleted:
        return "deleted"
    if not record.valid:
        return "invalid"
    return "paused" if record.paused else "active"


def collect(store: Store, *, include_deleted: bool, now: datetime) -> list[DagStatus]:
    with store.transaction() as uow:
        records = uow.list_dags(include_deleted=include_deleted)
        last_runs = {record.name: uow.last_run(record.name) for record in records}
    statuses = []
    for record in records:
        last = last_runs[record.name]
        spec = record.spec or {}
        statuses.append(
            DagStatus(
                name=record.name,
                state=dag_state(record),
                path=record.path,
                revision=record.revision,
                running_revision=record.spec_revision,
                schedule=spec.get("schedule"),
                last_run_state=None if last is None else last.state.value,
                last_run_logical_date=None if last is None else last.logical_date.isoformat(),
                next_run=_next_run(record, now=now),
                error=record.error,
                paused_by=record.paused_by if record.paused else None,
            )
        )
    return statuses


def _next_run(record: DagRecord, *, now: datetime) -> str | None:
    if not record.schedulable or record.spec is None:
        return None
    try:
        times = next_fire_times(dag_from_dict(record.spec), after=now, count=1)
    except ScheduleError:
        return None
    return times[0].isoformat() if times else None
