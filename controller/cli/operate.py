"""`kubedag cancel`, `retry`, `mark`, `pause` and `events`: operate runs from the command line.

Like `kubedag trigger`, these talk to the database only. An action is checked against
the run as it is now (a finished run cannot be cancelled, a running one not retried)
and queued for the leading controller's engine, which applies it within seconds, or
when it starts if no controller runs. `--wait` waits for the engine's answer. Every
action is an event in the run's history, naming who asked: `kubedag events RUN`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from controller.cli.database import (
    add_database_arguments,
    database_fail,
    fail,
    opened_store,
)
from controller.operations.pausing import set_paused
from controller.operations.requests import (
    ActionRefusedError,
    Queued,
    cli_requester,
    request_cancel,
    request_mark,
    request_retry,
    wait_for,
)
from controller.settings.model import ConfigError
from controller.store import NotMigratedError, Store
from controller.store.errors import DatabaseError

DEFAULT_WAIT_SECONDS = 60.0


def register(subparsers: Any) -> None:
    cancel = subparsers.add_parser(
        "cancel",
        help="cancel a run, or one task of a running run",
        description="Cancel RUN_ID: its running pods are deleted (their logs kept), nothing "
        "more is launched, and the run ends cancelled. With --task, cancel one task instance "
        "only: it counts as failed. Cancelling a cancelled run does nothing.",
    )
    cancel.add_argument("run_id", metavar="RUN_ID", type=int)
    cancel.add_argument("--task", metavar="TASK", help="cancel this task only")
    cancel.add_argument("--item", type=int, default=0, help="the withItems index (default 0)")
    cancel.add_argument(
        "--grace-period",
        type=int,
        metavar="SECONDS",
        help="seconds the task gets to stop after SIGTERM (default: the pod's own)",
    )
    _common(cancel)
    cancel.set_defaults(handler=run_cancel)

    retry = subparsers.add_parser(
        "retry",
        help="re-run the failed tasks of a finished run",
        description="Re-run the failed, cancelled and upstream_failed task instances of the "
        "finished run RUN_ID, in the same run, pinned to the run's own commit (--latest: "
        "to the newest synced one). With --task, re-run that task and everything downstream "
        "of it instead. Earlier tries stay in the history; tries keep counting.",
    )
    retry.add_argument("run_id", metavar="RUN_ID", type=int)
    retry.add_argument(
        "--latest", action="store_true", help="re-pin the run to the DAG's newest valid version"
    )
    retry.add_argument("--task", metavar="TASK", help="re-run this task and its downstream")
    retry.add_argument("--item", type=int, help="with --task: only this withItems index")
    _common(retry)
    retry.set_defaults(handler=run_retry)

    mark = subparsers.add_parser(
        "mark",
        help="mark a task instance succeeded or failed",
        description="Set the outcome of a task instance by hand: a running try is stopped, "
        "a finished one gets a new try in that state, and the tasks downstream then proceed "
        "as if it had ended so (a finished run runs again for them). A try marked failed is "
        "not retried.",
    )
    mark.add_argument("run_id", metavar="RUN_ID", type=int)
    mark.add_argument("task", metavar="TASK")
    mark.add_argument("state", choices=("succeeded", "failed"))
    mark.add_argument("--item", type=int, default=0, help="the withItems index (default 0)")
    mark.add_argument(
        "--result", help="the result downstream tasks read (succeeded only; JSON for json tasks)"
    )
    _common(mark)
    mark.set_defaults(handler=run_mark)

    for verb, doing in (("pause", "stop scheduling"), ("unpause", "resume scheduling")):
        pause = subparsers.add_parser(
            verb,
            help=f"{doing} a DAG without a git commit",
            description=f"{doing.capitalize()} DAG. Stored in the database, it overrides the "
            "file's spec.paused until a commit changes that field; `kubedag status` shows "
            "who paused a DAG. Runs already queued or running go on.",
        )
        pause.add_argument("dag", metavar="DAG")
        add_database_arguments(pause)
        pause.set_defaults(handler=run_pause, paused=verb == "pause")

    events = subparsers.add_parser(
        "events",
        help="the event history of a run",
        description="Every event of RUN_ID, oldest first: starts, tries, retries, and each "
        "operator action with who asked.",
    )
    events.add_argument("run_id", metavar="RUN_ID", type=int)
    events.add_argument("--limit", type=int, default=1000, help="at most this many events")
    add_database_arguments(events)
    events.add_argument("--output", choices=("table", "json"), default="table")
    events.set_defaults(handler=run_events)


def _common(parser: argparse.ArgumentParser) -> None:
    add_database_arguments(parser)
    parser.add_argument(
        "--wait",
        nargs="?",
        type=float,
        const=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"wait for the controller to apply it (default {DEFAULT_WAIT_SECONDS:g}s)",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text")


def run_cancel(args: argparse.Namespace) -> int:
    return _act(
        "cancel",
        args,
        lambda store, by: request_cancel(
            store,
            args.run_id,
            by=by,
            task=args.task,
            item_index=args.item,
            grace_seconds=args.grace_period,
        ),
    )


def run_retry(args: argparse.Namespace) -> int:
    if args.item is not None and args.task is None:
        return fail("retry", "--item needs --task")
    return _act(
        "retry",
        args,
        lambda store, by: request_retry(
            store, args.run_id, by=by, latest=args.latest, task=args.task, item_index=args.item
        ),
    )


def run_mark(args: argparse.Namespace) -> int:
    return _act(
        "mark",
        args,
        lambda store, by: request_mark(
            store,
            args.run_id,
            by=by,
            task=args.task,
            item_index=args.item,
            state=args.state,
            result=args.result,
        ),
    )


def run_pause(args: argparse.Namespace) -> int:
    command = "pause" if args.paused else "unpause"
    try:
        with opened_store(args) as store:
            record = set_paused(store, args.dag, paused=args.paused, by=cli_requester())
    except (ActionRefusedError, NotMigratedError, ConfigError) as error:
        return fail(command, str(error))
    except DatabaseError as error:
        return database_fail(command, args, error)
    print(f"DAG {record.name} {'paused' if record.paused else 'unpaused'}")
    return 0


def run_events(args: argparse.Namespace) -> int:
    try:
        with opened_store(args) as store, store.transaction() as uow:
            run = uow.get_run(args.run_id)
            events = uow.list_events(run_id=args.run_id, limit=args.limit)
    except (NotMigratedError, ConfigError) as error:
        return fail("events", str(error))
    except DatabaseError as error:
        return database_fail("events", args, error)
    if run is None:
        return fail("events", f"no run with id {args.run_id}; `kubedag runs` lists them")
    if args.output == "json":
        shown = [
            {
                "id": event.id,
                "at": event.at.isoformat(),
                "kind": event.kind,
                "task": event.task_name,
                "item": event.item_index,
                "try": event.try_number,
                "message": event.message,
                "data": event.data,
            }
            for event in events
        ]
        print(json.dumps(shown, indent=2))
        return 0
    for event in events:
        print(f"{event.at.strftime('%Y-%m-%d %H:%M:%SZ')}  {event.kind:<18} {event.message}")
    return 0


def _act(command: str, args: argparse.Namespace, act: Callable[[Store, str], Queued]) -> int:
    try:
        with opened_store(args) as store:
            queued = act(store, cli_requester())
            answer = None
            if queued.request is not None and args.wait is not None:
                answer = wait_for(store, queued.request.id, timeout=args.wait)
    except ActionRefusedError as error:
        return fail(command, str(error))
    except (NotMigratedError, ConfigError) as error:
        return fail(command, str(error))
    except TimeoutError as error:
        return fail(command, str(error), code=1)
    except DatabaseError as error:
        return database_fail(command, args, error)
    if args.output == "json":
        shown: dict[str, Any] = {"message": queued.message, "request": None}
        if queued.request is not None:
            final = answer or queued.request
            shown["request"] = {
                "id": final.id,
                "kind": final.kind,
                "state": final.state,
                "outcome": final.outcome,
            }
        print(json.dumps(shown, indent=2))
    elif answer is None:
        suffix = "; the controller applies it" if queued.request is not None else ""
        print(queued.message + suffix)
    else:
        print(f"request {answer.id} {answer.state}: {answer.outcome}")
    if answer is not None and answer.state == "rejected":
        return 2
    return 0
