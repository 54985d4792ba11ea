"""`kubedag run DAG_FILE`: run one DAG once on the cluster, now, outside any schedule.

What `argo submit --wait` and `airflow dags test` give their users: try a DAG on the
real cluster before pushing it to the synced branch. Worker pods never see the working
tree, only the commit their init container fetches, so the file is pinned to the commit
it is at and refused when it has uncommitted changes: running anything else than what
the user is looking at would be a lie.

Without ``--wait`` the run is queued in the database for the controller, and the run id
printed. With ``--wait`` this process is the controller for it: an engine and the
Kubernetes executor run here until the run ends, printing each task's progress, and
the exit status says whether it succeeded. Interrupted, the run is left as it is
(pods keep running); the controller adopts it.
"""

from __future__ import annotations

import argparse
import posixpath
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.base.states import DagRunState
from controller.executor.kubeclient import make_api_client
from controller.executor.kubernetes import KubernetesExecutor, settings_from_config
from controller.gitsync.localrepo import PinError, pinned_revision
from controller.logstore import LogStore
from controller.runtime.engine import Engine
from controller.runtime.manual import queue_manual_run
from controller.settings.loading import database_url_for, load_config
from controller.settings.model import Config, ConfigError
from controller.spec.model import dag_to_dict
from controller.spec.params import ParamError, resolve_params
from controller.spec.validate import validate_paths
from controller.store import (
    DagRunRecord,
    NotMigratedError,
    Store,
    TaskInstanceRecord,
    upgrade,
)

POLL_SECONDS = 0.5
CLEANUP_WAIT_SECONDS = 30.0


def register(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="run one DAG once on the cluster, now, pinned to the file's commit",
        description="Run the DAG in DAG_FILE once, outside any schedule, at the commit the "
        "file is at (a file with uncommitted changes is refused). With --wait, run it from "
        "this process, print each task's progress and exit 1 if the run fails.",
    )
    run.add_argument("dag_file", metavar="DAG_FILE", help="a DAG file inside a git repository")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a run parameter (repeatable); checked against the DAG's params",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="run it from this process until it ends; exit 1 if it fails",
    )
    run.add_argument("--namespace", help="where the worker pods go (default: from the config)")
    run.add_argument("--kubeconfig", help="the cluster to run on (default: $KUBECONFIG)")
    run.add_argument("--config", help="the controller config file (default: $KUBEDAG_CONFIG)")
    run.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        config = load_config(
            path=args.config,
            overrides={
                "kubeconfig": args.kubeconfig,
                "executor.namespaces": [args.namespace] if args.namespace else None,
            },
        )
        pinned = pinned_revision(Path(args.dag_file))
        given = dict(_split_param(text) for text in args.param)
    except (ConfigError, PinError, ValueError) as error:
        print(f"kubedag run: {error}", file=sys.stderr)
        return 2
    report = validate_paths([args.dag_file])
    if report.problems or not report.dags:
        for problem in report.problems:
            print(problem, file=sys.stderr)
        return 1
    loaded = report.dags[0]
    dag = loaded.dag
    try:
        params = resolve_params(dag, given)
    except ParamError as error:
        print(f"kubedag run: {error}", file=sys.stderr)
        return 2
    for path in pinned.uncommitted_elsewhere:
        print(f"note: {path} has uncommitted changes that this run will not see", file=sys.stderr)
    try:
        store = open_store(config)
    except NotMigratedError as error:
        print(f"kubedag run: {error}", file=sys.stderr)
        return 2
    try:
        with store.transaction() as uow:
            # A run needs its DAG's row; a DAG the controller already syncs keeps its own.
            if uow.get_dag(dag.name) is None:
                uow.upsert_dag(
                    name=dag.name,
                    path=pinned.path,
                    revision=pinned.revision,
                    spec_hash=loaded.content_hash,
                    spec=dag_to_dict(dag),
                )
            run = queue_manual_run(
                uow,
                dag_name=dag.name,
                spec=dag_to_dict(dag),
                revision=pinned.revision,
                params=params,
                now=datetime.now(UTC),
            )
        print(f"run {run.id} of {dag.name} at {pinned.revision[:12]} queued")
        if not args.wait:
            return 0
        final = drive(
            store,
            config,
            repo_url=pinned.fetch_url,
            dags_path=posixpath.dirname(pinned.path),
            run_id=run.id,
        )
    finally:
        store.close()
    print(f"run {run.id} of {dag.name} {final.value}")
    return 0 if final is DagRunState.SUCCEEDED else 1


def open_store(config: Config) -> Store:
    """The configured database; the embedded SQLite one is brought to the current schema."""
    url = database_url_for(config)
    if url.startswith("sqlite"):
        upgrade(url)
    return Store.connect(url)


def drive(
    store: Store, config: Config, *, repo_url: str, dags_path: str, run_id: int
) -> DagRunState:
    """Run an engine and the Kubernetes executor here until run ``run_id`` ends."""
    # The pods are created with the caller's own credentials, not the controller's: the
    # controller's pod policy guards its rights, which this command does not use.
    settings = replace(
        settings_from_config(config, repo_url=repo_url, dags_path=dags_path), pod_policy=None
    )
    api = make_api_client(kubeconfig=config.kubeconfig, pool_maxsize=max(32, settings.workers))
    executor = KubernetesExecutor(
        api, store, settings=settings, log_store=LogStore(config.log_store_location)
    )
    engine = Engine(
        store,
        executor,
        parallelism=config.executor.parallelism,
        max_infra_retries=config.executor.max_infra_retries,
    )
    engine.start()
    engine.wake([run_id])
    try:
        run = _follow(store, engine, run_id)
        # Wait (bounded) for the last pods' results and logs to reach the store, so
        # `kubedag logs` answers from it right away; a pod left holding its finalizer is
        # cleaned by the controller that adopts the run.
        deadline = time.monotonic() + CLEANUP_WAIT_SECONDS
        while not executor.results_stored(run.id) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
    finally:
        engine.stop()
        api.close()  # type: ignore[no-untyped-call]
    return run.state


def _follow(store: Store, engine: Engine, run_id: int) -> DagRunRecord:
    shown: dict[int, str] = {}
    while True:
        with store.transaction() as uow:
            run = uow.get_run(run_id)
            rows = uow.list_task_instances(run_id)
        for row in rows:
            line = _progress(row)
            if shown.get(row.id) != line:
                shown[row.id] = line
                print(line, flush=True)
        if run is None:
            raise RuntimeError(f"run {run_id} disappeared from the database")
        if run.state.finished:
            return run
        if not engine.running:
            raise RuntimeError(f"the engine stopped: {engine.error}")
        time.sleep(POLL_SECONDS)


def _progress(row: TaskInstanceRecord) -> str:
    item = f"[{row.item_index}]" if row.item is not None else ""
    line = f"  {row.task_name}{item} try {row.try_number}: {row.state.value}"
    if row.reason or row.message:
        detail = ": ".join(part for part in (row.reason, row.message) if part)
        line += f" ({detail})"
    elif row.result:
        line += f" -> {row.result[:80]}"
    return line


def _split_param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--param {text!r}: expected KEY=VALUE")
    return key, value
