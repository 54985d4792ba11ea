"""`kubedag db`: create and migrate the database schema, and show its revision.

The controller refuses to start on a schema other than the one it was built for, so
upgrading is an explicit, visible step an operator runs (or a deploy job runs) before
starting a new version, instead of something a starting controller does on its own.
Database errors are reported as one readable line with the password masked, not as a
traceback with the URL in it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from controller.base.durations import DurationError, parse_duration
from controller.cli.database import add_database_arguments, database_url
from controller.logstore import LogStore
from controller.operations.retention import clean
from controller.settings.loading import database_url_for, load_config
from controller.settings.model import ConfigError
from controller.store import NotMigratedError, Store, current_revision, display_url, head_revision
from controller.store import upgrade as upgrade_database
from controller.store.errors import DatabaseError, describe_database_error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="create, migrate and inspect the kubedag database",
        description="Create, migrate and inspect the kubedag database schema.",
    )
    commands = parser.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)

    upgrade = commands.add_parser(
        "upgrade",
        help="create or migrate the schema to this kubedag's version",
        description="Create the schema on an empty database, or migrate an older one; "
        "does nothing when the schema is already current.",
    )
    add_database_arguments(upgrade)
    upgrade.set_defaults(handler=run_upgrade)

    current = commands.add_parser(
        "current",
        help="show the database's schema revision",
        description="Print the schema revision of the database and whether it is the one "
        "this kubedag needs. Exits 1 when the database needs `kubedag db upgrade`.",
    )
    add_database_arguments(current)
    current.set_defaults(handler=run_current)

    clean = commands.add_parser(
        "clean",
        help="delete runs, task rows, events and stored logs older than a duration",
        description="Delete the runs that finished more than --older-than ago, with their "
        "task instances, events and stored logs, and older events of no run, in small "
        "batches (no long locks). Queued and running runs are never touched. The database "
        "and the log store are the controller's (--config), or as given.",
    )
    clean.add_argument(
        "--older-than", required=True, metavar="DURATION", help="e.g. 90d, 36h (d, h, m, s)"
    )
    clean.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    add_database_arguments(clean)
    clean.add_argument("--log-store", metavar="LOCATION", help="default: as the controller")
    clean.set_defaults(handler=run_clean)


def run_upgrade(args: argparse.Namespace) -> int:
    try:
        url = database_url(args)
    except ConfigError as error:
        print(f"kubedag db upgrade: {error}", file=sys.stderr)
        return 2
    try:
        before = current_revision(url)
        upgrade_database(url)
    except (DatabaseError, ValueError) as error:
        return _fail(url, error)
    head = head_revision()
    if before == head:
        print(f"{display_url(url)}: schema already at revision {head}")
    else:
        print(f"{display_url(url)}: schema upgraded from {before or 'empty'} to revision {head}")
    return 0


def run_current(args: argparse.Namespace) -> int:
    try:
        url = database_url(args)
    except ConfigError as error:
        print(f"kubedag db current: {error}", file=sys.stderr)
        return 2
    try:
        revision = current_revision(url)
    except (DatabaseError, ValueError) as error:
        return _fail(url, error)
    head = head_revision()
    if revision == head:
        print(f"{display_url(url)}: revision {revision} (current)")
        return 0
    shown = revision or "none (empty database)"
    print(
        f"{display_url(url)}: revision {shown}; this kubedag needs {head}: run `kubedag db upgrade`"
    )
    return 1


def run_clean(args: argparse.Namespace) -> int:
    try:
        older_than = timedelta(seconds=parse_duration(args.older_than))
        config = load_config(
            path=args.config,
            overrides={"databaseUrl": args.database_url, "logStore": args.log_store},
        )
    except (DurationError, ConfigError) as error:
        print(f"kubedag db clean: {error}", file=sys.stderr)
        return 2
    if older_than <= timedelta(0):
        print("kubedag db clean: --older-than must be more than 0", file=sys.stderr)
        return 2
    url = database_url_for(config)
    try:
        store = Store.connect(url)
    except NotMigratedError as error:
        print(f"kubedag db clean: {error}", file=sys.stderr)
        return 2
    except (DatabaseError, ValueError) as error:
        return _fail(url, error)
    try:
        log_store = None if args.dry_run else LogStore(config.log_store_location)
        cleaned = clean(store, log_store, older_than=older_than, dry_run=args.dry_run)
    except DatabaseError as error:
        return _fail(url, error)
    finally:
        store.close()
    print(f"{'would delete' if args.dry_run else 'deleted'} {cleaned}")
    return 0


def _fail(url: str, error: Exception) -> int:
    # The first line of a driver error says what went wrong; the rest is SQL and
    # a link to SQLAlchemy's docs.
    detail = describe_database_error(error)
    print(f"kubedag db: cannot use the database {display_url(url)}: {detail}", file=sys.stderr)
    return 2
