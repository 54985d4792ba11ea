"""`kubedag controller`: run the controller process until SIGTERM or SIGINT.

Configuration comes from the config file, `KUBEDAG_*` environment variables and these
flags, in rising precedence. It is validated before anything starts: a configuration
or startup problem prints one `error:` line naming the setting and exits 2, so a bad
ConfigMap fails the rollout visibly instead of crash-looping with a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from controller.process.collection import tune_garbage_collection
from controller.process.logging import configure_logging
from controller.process.wiring import StartupError
from controller.settings.loading import load_config
from controller.settings.model import ConfigError

EXIT_CONFIG = 2

log = logging.getLogger("controller.cli.controller")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "controller",
        help="run the controller: follow the DAG repository, schedule and run DAGs",
        description="Run the kubedag controller: git-sync the DAG repository, validate and "
        "schedule its DAGs, start one worker pod per task instance and record the results. "
        "Settings: config file < KUBEDAG_* environment < flags; see docs/controller.md.",
    )
    add_controller_flags(parser)
    parser.set_defaults(handler=run_controller)


def add_controller_flags(parser: argparse.ArgumentParser) -> None:
    """The flags shared by `kubedag controller` and `kubedag dev`."""
    parser.add_argument("--config", metavar="FILE", help="YAML config file ($KUBEDAG_CONFIG)")
    parser.add_argument("--kubeconfig", metavar="PATH", help="default: $KUBECONFIG, in-cluster")
    parser.add_argument("--database-url", metavar="URL", help="default: SQLite in the data dir")
    parser.add_argument("--data-dir", metavar="DIR", help="checkouts, SQLite and logs")
    parser.add_argument("--git-url", metavar="URL", help="the DAG repository")
    parser.add_argument("--git-ref", metavar="REF", help="branch, tag or commit SHA")
    parser.add_argument("--dags-path", metavar="PATH", help="directory of DAG files in the repo")
    parser.add_argument("--git-interval", metavar="DURATION", help="fetch interval, e.g. 30s")
    parser.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="namespace for worker pods (repeatable; the first is where pods are created)",
    )
    parser.add_argument("--http-port", type=int, metavar="PORT", help="health/metrics port")
    parser.add_argument("--log-format", choices=("json", "text"))
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument(
        "--no-leader-election",
        action="store_const",
        const=False,
        dest="leader_election",
        help="lead without a Lease (a single replica only)",
    )
    parser.add_argument(
        "--migrate",
        action="store_true",
        help="create or migrate the database schema at start (for the embedded SQLite "
        "database; in production run `kubedag db upgrade` as a deploy step)",
    )


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Flags as dotted config paths; unset flags are None and leave lower layers alone."""
    return {
        "kubeconfig": args.kubeconfig,
        "databaseUrl": args.database_url,
        "dataDir": args.data_dir,
        "git.url": args.git_url,
        "git.ref": args.git_ref,
        "git.dagsPath": args.dags_path,
        "git.interval": args.git_interval,
        "executor.namespaces": args.namespaces,
        "http.port": args.http_port,
        "logFormat": args.log_format,
        "logLevel": args.log_level,
        "leaderElection.enabled": args.leader_election,
    }


def run_controller(args: argparse.Namespace) -> int:
    from controller.process.controller import build_controller

    try:
        config = load_config(path=args.config, overrides=overrides_from(args))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(log_format=config.log_format, level=config.log_level)
    try:
        controller = build_controller(config, migrate=args.migrate)
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    # Everything loaded and built so far lives as long as the process; no thread runs
    # yet. See controller/process/collection.py for what this saves and why it is safe.
    frozen = tune_garbage_collection()
    log.debug("froze %d startup objects out of garbage collection", frozen)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    return controller.run(stop)
