"""`kubedag logs RUN TASK`: a task try's log, from its pod while it runs, from the log store after.

Users should not have to know where a log lives at the moment they ask: while the pod
exists it is read (or followed) through the API server; once the try finished and the
executor copied the log, the pod may be gone and the log store answers. The store is
asked first for a finished try, so the answer does not depend on whether the pod was
deleted yet. A follow can outlive its pod too: the executor deletes a finished pod right
after storing its log, often before the follower learns that the container ended, so a
follow whose pod vanished prints the rest of the log from the store.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controller.cli.database import add_database_arguments
from controller.executor.kubeclient import ApiClient, make_api_client, read_error
from controller.executor.podlogs import (
    LogFollow,
    LogUnavailableError,
    PodGoneError,
    read_pod_logs,
)
from controller.executor.podspec import TASK_CONTAINER as MAIN_CONTAINER
from controller.logstore import LogKey, LogStore
from controller.settings.loading import database_url_for, load_config
from controller.settings.model import ConfigError
from controller.store import NotMigratedError, Store, TaskInstanceRecord


def register(subparsers: Any) -> None:
    logs = subparsers.add_parser(
        "logs",
        help="print a task try's log (from its pod while it runs, from the log store after)",
        description="Print the log of one try of one task instance of a run. The latest try "
        "unless --try is given; item 0 unless --item is given (withItems tasks).",
    )
    logs.add_argument("run", type=int, metavar="RUN", help="the run id")
    logs.add_argument("task", metavar="TASK", help="the task name")
    logs.add_argument("--item", type=int, default=0, help="the item index of a withItems task")
    logs.add_argument("--try", dest="try_number", type=int, help="the try (default: the latest)")
    logs.add_argument(
        "--container",
        default=MAIN_CONTAINER,
        help=f"the container (default: {MAIN_CONTAINER}; the checkout is git-checkout)",
    )
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing while the task runs"
    )
    logs.add_argument("--config", help="the controller config file (default: $KUBEDAG_CONFIG)")
    logs.add_argument("--kubeconfig", help="the cluster (default: $KUBECONFIG)")
    add_database_arguments(logs, config=False)
    logs.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        config = load_config(
            path=args.config,
            overrides={"kubeconfig": args.kubeconfig, "databaseUrl": args.database_url},
        )
        store = Store.connect(database_url_for(config))
    except (ConfigError, NotMigratedError) as error:
        print(f"kubedag logs: {error}", file=sys.stderr)
        return 2
    try:
        with store.transaction() as uow:
            tries = [
                row
                for row in uow.list_task_instances(args.run)
                if row.task_name == args.task and row.item_index == args.item
            ]
    finally:
        store.close()
    chosen = _choose(tries, args.try_number)
    if chosen is None:
        which = f"try {args.try_number} of " if args.try_number else ""
        print(
            f"kubedag logs: no {which}task {args.task!r} item {args.item} in run {args.run}",
            file=sys.stderr,
        )
        return 1
    key = LogKey(chosen.key, args.container)
    logs = LogStore(config.log_store_location)
    if chosen.state.finished:
        stored = logs.read(key)
        if stored is not None:
            sys.stdout.write(stored)
            return 0
    if not chosen.pod_name:
        print(
            f"kubedag logs: try {chosen.try_number} of {args.task!r} has no pod "
            f"({chosen.state.value}) and no stored log",
            file=sys.stderr,
        )
        return 1
    namespace = chosen.namespace or config.executor.namespaces[0]
    with make_api_client(kubeconfig=config.kubeconfig) as api:
        try:
            if args.follow and not chosen.state.finished:
                return _follow(api, chosen, namespace=namespace, logs=logs, key=key)
            return _from_pod(api, chosen, namespace=namespace, container=args.container)
        except LogUnavailableError as error:
            print(f"kubedag logs: {error}", file=sys.stderr)
            return 1
        except Exception as exc:
            print(f"kubedag logs: {read_error(exc).message}", file=sys.stderr)
            return 1


def _choose(tries: list[TaskInstanceRecord], number: int | None) -> TaskInstanceRecord | None:
    if number is not None:
        return next((row for row in tries if row.try_number == number), None)
    return max(tries, key=lambda row: row.try_number, default=None)


def _follow(
    api: ApiClient, row: TaskInstanceRecord, *, namespace: str, logs: LogStore, key: LogKey
) -> int:
    """Print the pod's lines as they are written; if the pod goes, the rest from the store."""
    follow = LogFollow(api, namespace=namespace, pod=str(row.pod_name), container=key.container)
    printed = 0
    try:
        for line in follow:
            print(line, flush=True)
            printed += 1
    except PodGoneError as gone:
        # The executor stores a pod's log before it lets the pod be deleted.
        stored = logs.read(key)
        if stored is None:
            print(
                f"kubedag logs: {gone}, and try {row.try_number} of {row.task_name!r} "
                "has no stored log",
                file=sys.stderr,
            )
            return 1
        sys.stdout.write("\n".join(stored.split("\n")[printed:]))
    return 0


def _from_pod(api: ApiClient, row: TaskInstanceRecord, *, namespace: str, container: str) -> int:
    pod = str(row.pod_name)
    (entry,) = read_pod_logs(api, namespace=namespace, pod=pod, containers=[container])
    if entry.error and not entry.text:
        print(f"kubedag logs: pod {pod}: {entry.error}", file=sys.stderr)
        return 1
    sys.stdout.write(entry.text)
    return 0
