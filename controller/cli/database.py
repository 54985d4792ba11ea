"""The database a CLI command reads, found the way the controller finds it.

Every command that opens the database takes `--database-url` and `--config` and
resolves them through the controller's configuration: the flag, else
$KUBEDAG_DATABASE_URL, else the config file's `databaseUrl` (`--config` or
$KUBEDAG_CONFIG), else kubedag.db in the data directory. So `kubedag runs` reads the
same database as `kubedag status` and the controller, whichever of them is set.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from controller.settings.loading import database_url_for, load_config
from controller.store import Store, display_url
from controller.store.errors import DatabaseError, describe_database_error

DATABASE_URL_HELP = (
    "database URL, e.g. postgresql://user@host/kubedag or sqlite:///path/kubedag.db "
    "(default: $KUBEDAG_DATABASE_URL, else databaseUrl in the config file, else "
    "kubedag.db in $KUBEDAG_DATA_DIR, default ~/.local/share/kubedag)"
)


def add_database_arguments(parser: argparse.ArgumentParser, *, config: bool = True) -> None:
    """--database-url, and --config unless the command already takes it."""
    parser.add_argument("--database-url", metavar="URL", help=DATABASE_URL_HELP)
    if config:
        parser.add_argument(
            "--config", metavar="FILE", help="the controller config file (default: $KUBEDAG_CONFIG)"
        )


def database_url(args: argparse.Namespace) -> str:
    """The database URL for this command's arguments; raises ConfigError."""
    config = load_config(
        path=getattr(args, "config", None),
        overrides={"databaseUrl": getattr(args, "database_url", None)},
    )
    return database_url_for(config)


@contextmanager
def opened_store(args: argparse.Namespace) -> Iterator[Store]:
    """A Store for one command, closed afterwards; refuses an unmigrated database."""
    store = Store.connect(database_url(args))
    try:
        yield store
    finally:
        store.close()


def fail(command: str, message: str, *, code: int = 2) -> int:
    """Print `kubedag COMMAND: MESSAGE` on stderr; the exit code."""
    print(f"kubedag {command}: {message}", file=sys.stderr)
    return code


def database_fail(command: str, args: argparse.Namespace, error: DatabaseError) -> int:
    """fail() for a database error, naming the database (without its password)."""
    detail = describe_database_error(error)
    url = display_url(database_url(args))
    return fail(command, f"cannot use the database {url}: {detail}")
