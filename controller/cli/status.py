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
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from controller.operations.dagstatus import DagStatus, collect
from controller.settings.loading import database_url_for, load_config
from controller.settings.model import ConfigError
from controller.store import NotMigratedError, Store, display_url
from controller.store.errors import DatabaseError


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
    except (DatabaseError, ValueError) as error:
        print(f"error: cannot read {display_url(url)}: {error}", file=sys.stderr)
        return 1
    try:
        statuses = collect(store, include_deleted=args.all, now=datetime.now(UTC))
    except DatabaseError as error:
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
