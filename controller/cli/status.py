"""`kubedag status`: every DAG's state, last and next run, and why invalid ones are.

It reads the database only, never the cluster or git, so it answers the same whether
the controller is up, down or failing over, and it works from any machine that can
reach the database. The trap it avoids is a status that hides the one thing the user
came for: an invalid DAG shows its full validation error and which commit's version
is still running, because the last valid version keeps being scheduled.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from controller.config import ConfigError, database_url_for, load_config
from controller.spec.model import dag_from_dict
from controller.spec.schedule import ScheduleError, next_fire_times
from controller.store import DagRecord, NotMigratedError, Store, display_url


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


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show DAGs with their state, last and next run, and errors",
        description="Show every DAG the controller knows from the database: active, paused, "
        "invalid (its last valid version keeps running) or deleted (history kept), with its "
        "last run, its next scheduled run and the validation errors of invalid DAGs.",
    )
    parser.add_argument("--config", metavar="FILE", help="controller config file")
    parser.add_argument("--database-url", metavar="URL", help="default: as the controller")
    parser.add_argument("--data-dir", metavar="DIR", help="where the SQLite default lives")
    parser.add_argument("--all", action="store_true", help="include DAGs whose files were deleted")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")
    parser.set_defaults(handler=run_status)


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


def run_status(args: argparse.Namespace) -> int:
    overrides = {"databaseUrl": args.database_url, "dataDir": args.data_dir}
    try:
        config = load_config(path=args.config, overrides=overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    url = database_url_for(config)
    try:
        store = Store.connect(url)
    except NotMigratedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (SQLAlchemyError, ValueError) as error:
        print(f"error: cannot read {display_url(url)}: {error}", file=sys.stderr)
        return 1
    try:
        statuses = collect(store, include_deleted=args.all, now=datetime.now(UTC))
    except SQLAlchemyError as error:
        print(f"error: cannot read {display_url(url)}: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps({"dags": [asdict(status) for status in statuses]}, indent=2))
    else:
        print(render_text(statuses))
    return 0


def render_text(statuses: list[DagStatus]) -> str:
    if not statuses:
        return "no DAGs yet: the controller has not synced a commit with valid DAG files"
    header = ("DAG", "STATE", "SCHEDULE", "LAST RUN", "NEXT RUN")
    rows = [header]
    for status in statuses:
        last = (
            f"{status.last_run_state} {status.last_run_logical_date}"
            if status.last_run_state
            else "-"
        )
        rows.append(
            (
                status.name,
                f"paused by {status.paused_by}"
                if status.state == "paused" and status.paused_by
                else status.state,
                status.schedule or "manual",
                last,
                status.next_run or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for status in statuses:
        if status.state != "invalid" or not status.error:
            continue
        running = (
            f"version from {status.running_revision[:12]} keeps running"
            if status.running_revision
            else "no valid version yet, nothing runs"
        )
        lines.append("")
        lines.append(f"{status.name} is invalid at {status.revision[:12]} ({running}):")
        lines.extend(f"  {line}" for line in status.error.splitlines())
    return "\n".join(lines)
