"""`kubedag backfill`: create a DAG's scheduled runs for a range of dates, and follow them.

The runs are created at once (each date once: a date with a run keeps it) and the
controller starts them within maxActiveRuns; `--wait` then reports their progress until
every one has finished. `--dry-run` lists the dates and which of them already have runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from controller.cli.database import add_database_arguments, database_url
from controller.operations.backfill import Backfill, backfill, progress
from controller.operations.requests import ActionRefusedError, cli_requester
from controller.settings.model import ConfigError
from controller.store import NotMigratedError, Store, display_url
from controller.store.errors import DatabaseError

PROGRESS_SECONDS = 2.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backfill",
        help="create a DAG's scheduled runs for a range of dates",
        description="Create the runs DAG's schedule has in [--from, --to] (dates or ISO "
        "times; without an offset, in the DAG's time zone; a date as --to includes its "
        "whole day). Each date gets one run: dates that have one keep it, and the scheduler "
        "will not make a second. The range must lie within the DAG's startDate and endDate.",
    )
    parser.add_argument("dag", metavar="DAG")
    parser.add_argument("--from", dest="start", required=True, metavar="WHEN")
    parser.add_argument("--to", dest="end", required=True, metavar="WHEN")
    parser.add_argument("--dry-run", action="store_true", help="show the dates, create nothing")
    parser.add_argument(
        "--max-active-runs",
        type=int,
        metavar="N",
        help="start at most N of these runs while N of the DAG's runs are running "
        "(the DAG's maxActiveRuns holds too)",
    )
    parser.add_argument(
        "--wait",
        nargs="?",
        type=float,
        const=0.0,
        metavar="SECONDS",
        help="report progress until every run finished (or SECONDS passed)",
    )
    add_database_arguments(parser)
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.set_defaults(handler=run_backfill)


def run_backfill(args: argparse.Namespace) -> int:
    try:
        url = database_url(args)
    except ConfigError as error:
        return _fail(str(error))
    try:
        store = Store.connect(url)
    except NotMigratedError as error:
        return _fail(str(error))
    except (DatabaseError, ValueError) as error:
        return _fail(f"cannot use the database {display_url(url)}: {error}")
    try:
        done = backfill(
            store,
            args.dag,
            start=args.start,
            end=args.end,
            by=cli_requester(),
            max_active_runs=args.max_active_runs,
            dry_run=args.dry_run,
        )
        _show(done, dry_run=args.dry_run, as_json=args.output == "json")
        if args.wait is not None and done.created:
            return _follow(store, [run.id for run in done.created], timeout=args.wait)
    except ActionRefusedError as error:
        return _fail(str(error))
    except DatabaseError as error:
        return _fail(f"cannot use the database {display_url(url)}: {error}")
    finally:
        store.close()
    return 0


def _show(done: Backfill, *, dry_run: bool, as_json: bool) -> None:
    created = {run.logical_date: run for run in done.created}
    if as_json:
        rows = []
        for date in done.dates:
            run = created.get(date) or done.existing.get(date)
            rows.append(
                {
                    "logicalDate": date.isoformat(),
                    "runId": None if run is None else run.id,
                    "created": date in created,
                }
            )
        print(json.dumps({"dag": done.dag, "dryRun": dry_run, "runs": rows}, indent=2))
        return
    for date in done.dates:
        when = date.strftime("%Y-%m-%d %H:%M:%SZ")
        if date in done.existing:
            run = done.existing[date]
            print(f"{when}  has run {run.id} ({run.state.value}): left alone")
        elif dry_run:
            print(f"{when}  would be created")
        else:
            print(f"{when}  run {created[date].id} queued")
    verb = "would create" if dry_run else "created"
    print(f"{done.dag}: {len(done.dates)} dates, {verb} {len(done.dates) - len(done.existing)}")


def _follow(store: Store, run_ids: list[int], *, timeout: float) -> int:
    deadline = None if timeout <= 0 else time.monotonic() + timeout
    shown = ""
    while True:
        now = progress(store, run_ids)
        if str(now) != shown:
            shown = str(now)
            print(shown, flush=True)
        if now.finished == now.total:
            return 0 if now.states.get("succeeded", 0) == now.total else 1
        if deadline is not None and time.monotonic() >= deadline:
            print(f"kubedag backfill: still running after {timeout:g}s", file=sys.stderr)
            return 1
        time.sleep(PROGRESS_SECONDS)


def _fail(message: str) -> int:
    print(f"kubedag backfill: {message}", file=sys.stderr)
    return 2
