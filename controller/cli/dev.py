"""`kubedag dev`: watch kubedag work end to end on this machine, with one command.

It brings up (or reuses) the local control plane and its node agent, starts a real
controller in this process that git-syncs this repository's `sample-dags/` at the
current commit into an embedded SQLite database, triggers one sample DAG and prints the
run as it progresses, then its results and the tail of each task's log.

Everything it runs is the production code path: the same controller, git-sync, engine
and Kubernetes executor that `kubedag controller` runs in a cluster, so what a newcomer
sees is what they deploy. Two traps it avoids: running a sample the worker pods cannot
see (pods fetch a commit, never the working tree, so uncommitted edits to
`sample-dags/` are left out and the command says so), and leaving processes behind
(Ctrl-C stops the controller and the node agent if this command started it; the
cluster stays up for the next run unless `--stop-cluster`).
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from controller.base.states import DagRunState
from controller.devcluster import ClusterConfig, ClusterError, LocalCluster
from controller.devcluster.cluster import NODE_AGENT, PACKAGE_ROOT
from controller.devcluster.layout import DEV_PORT_BASE, cache_dir, default_data_dir
from controller.executor.podspec import TASK_CONTAINER as MAIN_CONTAINER
from controller.logstore import LogKey, LogStore
from controller.process.logging import configure_logging
from controller.process.wiring import StartupError
from controller.runtime.manual import TriggerError, trigger_run
from controller.settings.loading import database_url_for, load_config, sqlite_url_in
from controller.settings.model import Config, ConfigError
from controller.spec.params import ParamError
from controller.store import DagRecord, Store, TaskInstanceRecord

if TYPE_CHECKING:
    from controller.process.controller import Controller

T = TypeVar("T")

DEFAULT_DAG = "etl-orders"
SAMPLE_DAGS = "sample-dags"
POLL_SECONDS = 0.5
LOG_TAIL_LINES = 5
LOG_WAIT_SECONDS = 15.0
GIT_TIMEOUT = 30.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run a sample DAG on a local cluster with a local controller, and show it",
        description="Start (or reuse) the local control plane and node agent, run a "
        "controller here that follows this repository's sample-dags at the current commit "
        "with an embedded SQLite database, trigger a sample DAG and show the run until it "
        "ends. Ctrl-C stops the controller (and the node agent if this command started "
        "it); the cluster stays up unless --stop-cluster.",
    )
    parser.add_argument("--dag", default=DEFAULT_DAG, help="the sample DAG (default: %(default)s)")
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="use this cluster instead of starting the local one",
    )
    parser.add_argument(
        "--no-node-agent",
        action="store_true",
        help="do not start a node agent (one already runs pods for this cluster)",
    )
    parser.add_argument("--namespace", default="default", help="for worker pods")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=cache_dir() / "dev-controller",
        help="checkouts, the SQLite database, logs (default: %(default)s)",
    )
    parser.add_argument(
        "--cluster-dir",
        type=Path,
        default=default_data_dir("dev"),
        help="the local cluster to start or reuse when no --kubeconfig is given; as "
        "`kubedag dev-cluster --data-dir` (default: %(default)s)",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=DEV_PORT_BASE,
        help="the local cluster's apiserver port, as `kubedag dev-cluster --port-base`; "
        "the next five ports are its other components' (default: %(default)s)",
    )
    parser.add_argument("--repo", type=Path, default=PACKAGE_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after seconds")
    parser.add_argument(
        "--http-port",
        type=int,
        default=0,
        help="the controller's HTTP port: web UI, API, metrics (default: any free port)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the run, keep the controller and its web UI up until Ctrl-C",
    )
    parser.add_argument(
        "--stop-cluster", action="store_true", help="stop the local cluster when done"
    )
    parser.set_defaults(handler=run_dev)


def say(message: str) -> None:
    print(f"kubedag dev: {message}", flush=True)


@dataclass
class ClusterSession:
    """The cluster this command uses and what it started, to stop exactly that."""

    kubeconfig: Path
    local: LocalCluster | None
    started_agent: bool

    def close(self, *, stop_cluster: bool) -> None:
        if self.local is None:
            return
        if stop_cluster:
            stopped = self.local.down()
            say(f"stopped {', '.join(stopped) or 'nothing'}")
            return
        if self.started_agent and self.local.stop_node_agent():
            say("stopped the node agent this command started")
        say(
            f"the cluster keeps running; stop it with: kubedag dev-cluster --data-dir "
            f"{self.local.config.data_dir} down"
        )


def _cluster(args: argparse.Namespace) -> ClusterSession:
    if args.kubeconfig:
        kubeconfig = Path(args.kubeconfig)
        local = LocalCluster.at(kubeconfig)
        started = False
        if local is not None and not args.no_node_agent:
            started = local.status()[NODE_AGENT] is None
            local.up(with_node_agent=True)
        say(f"using the cluster of {kubeconfig}")
        return ClusterSession(kubeconfig, local, started)
    local = LocalCluster(
        ClusterConfig(data_dir=args.cluster_dir, port_base=args.port_base), log=say
    )
    before = local.status()
    local.up(with_node_agent=not args.no_node_agent)
    reused = all(pid is not None for name, pid in before.items() if name != NODE_AGENT)
    started = not args.no_node_agent and before[NODE_AGENT] is None
    say(f"local control plane {'reused' if reused else 'started'} at {local.config.server_url}")
    if started:
        say("node agent started (pods run as local processes)")
    return ClusterSession(local.kubeconfig, local, started)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise StartupError(f"git {' '.join(args)} in {repo} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def pin_samples(repo: Path) -> tuple[Path, str]:
    """This repository's root and its HEAD commit, after saying what the run leaves out."""
    root = Path(_git(repo, "rev-parse", "--show-toplevel"))
    revision = _git(root, "rev-parse", "HEAD")
    if _git(root, "cat-file", "-t", f"{revision}:{SAMPLE_DAGS}") != "tree":
        raise StartupError(f"commit {revision[:12]} of {root} has no {SAMPLE_DAGS}/ directory")
    dirty = _git(root, "status", "--porcelain", "--", SAMPLE_DAGS)
    if dirty:
        say(
            f"{SAMPLE_DAGS}/ has uncommitted changes; worker pods fetch commits, so this run "
            f"uses the last commit {revision[:12]} without them:"
        )
        for line in dirty.splitlines():
            print(f"    {line}", flush=True)
    return root, revision


def dev_token_file(data_dir: Path) -> Path:
    """The API token of the dev controller: made once, kept for the next `kubedag dev`."""
    path = data_dir / "api-token"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24) + "\n")
    return path


def dev_config(args: argparse.Namespace, *, repo: Path, revision: str, kubeconfig: Path) -> Config:
    data_dir = Path(args.data_dir)
    return load_config(
        path=None,
        overrides={
            "kubeconfig": str(kubeconfig),
            "dataDir": str(data_dir),
            # Its own database, whatever $KUBEDAG_DATABASE_URL says: a dev controller
            # must never write into the database of a real one.
            "databaseUrl": sqlite_url_in(data_dir),
            "logFormat": "text",
            "http.bind": "127.0.0.1",
            "http.port": args.http_port,
            "api.tokenFile": str(dev_token_file(data_dir)),
            "git.url": repo.as_uri(),
            "git.ref": revision,
            "git.dagsPath": SAMPLE_DAGS,
            "git.interval": 5,
            "executor.namespaces": [args.namespace],
            "leaderElection.enabled": False,
        },
    )


def run_dev(args: argparse.Namespace) -> int:
    try:
        repo, revision = pin_samples(args.repo)
        session = _cluster(args)
    except (StartupError, ClusterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        config = dev_config(args, repo=repo, revision=revision, kubeconfig=session.kubeconfig)
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        log_file = Path(config.data_dir) / "controller.log"
        with log_file.open("a", encoding="utf-8") as stream:
            # The terminal is for the run's progress; the controller's own log goes aside.
            configure_logging(log_format="text", level="INFO", stream=stream)
            return _with_controller(args, config=config, log_file=log_file)
    except (StartupError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("interrupted; the controller stopped, worker pods keep running")
        return 130
    finally:
        session.close(stop_cluster=args.stop_cluster)


def _with_controller(args: argparse.Namespace, *, config: Config, log_file: Path) -> int:
    from controller.process.controller import Controller

    controller = Controller(config, migrate=True)
    try:
        controller.start()
        say(
            f"controller following {config.git.url} at {config.git.ref[:12]} "
            f"({SAMPLE_DAGS}/), database {database_url_for(config)}"
        )
        say(f"controller log: {log_file}")
        say(f"metrics: http://127.0.0.1:{controller.http.port}/metrics")
        say(
            f"web UI: http://127.0.0.1:{controller.http.port}/ui/ "
            f"(its actions take the token in {config.api_token_file})"
        )
        code = _run_sample(controller, args, config=config)
        if args.keep_running:
            say("the controller and web UI keep running; Ctrl-C stops them")
            threading.Event().wait()
        return code
    finally:
        controller.stop()


def _run_sample(controller: Controller, args: argparse.Namespace, *, config: Config) -> int:
    store = controller.store
    deadline = time.monotonic() + args.timeout
    say(f"waiting for {args.dag} to be synced...")
    dag = _wait_for(lambda: _synced_dag(controller, args.dag), deadline=deadline)
    if dag is None:
        print(f"error: {_why_missing(store, args.dag)}", file=sys.stderr)
        return 1
    run_id = _trigger(store, dag)
    controller.leadership.wake([run_id])
    say(f"run {run_id} of {dag.name} queued at {(dag.spec_revision or '')[:12]}")
    started = time.monotonic()
    final = _follow(store, run_id, deadline=deadline)
    if final is None:
        print(f"error: run {run_id} did not finish within {args.timeout:g}s", file=sys.stderr)
        return 1
    say(f"run {run_id} of {dag.name} {final.value} in {time.monotonic() - started:.1f}s")
    _show_results(store, LogStore(config.log_store_location), run_id)
    return 0 if final is DagRunState.SUCCEEDED else 1


def _wait_for(check: Callable[[], T | None], *, deadline: float) -> T | None:
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(POLL_SECONDS)
    return None


def _synced_dag(controller: Controller, name: str) -> DagRecord | None:
    """The DAG once it has a valid version and the engine runs to pick its run up."""
    if not controller.leadership.active:
        return None
    with controller.store.transaction() as uow:
        record = uow.get_dag(name)
    if record is None or record.spec is None or record.deleted:
        return None
    return record


def _why_missing(store: Store, name: str) -> str:
    with store.transaction() as uow:
        known = [record.name for record in uow.list_dags()]
    if name in known:
        return f"{name} has no valid version; see `kubedag status`"
    return f"no DAG {name!r} in {SAMPLE_DAGS}/ (found: {', '.join(known) or 'none'})"


def _trigger(store: Store, dag: DagRecord) -> int:
    try:
        return trigger_run(store, dag_name=dag.name, params={}).id
    except (TriggerError, ParamError) as error:
        raise StartupError(f"cannot trigger {dag.name}: {error}") from error


def _follow(store: Store, run_id: int, *, deadline: float) -> DagRunState | None:
    shown: dict[int, str] = {}
    while time.monotonic() < deadline:
        with store.transaction() as uow:
            run = uow.get_run(run_id)
            rows = uow.list_task_instances(run_id)
        for line in progress_updates(rows, shown):
            print(f"  {datetime.now().strftime('%H:%M:%S')} {line}", flush=True)
        if run is not None and run.state.finished:
            return run.state
        time.sleep(POLL_SECONDS)
    return None


def progress_updates(rows: Sequence[TaskInstanceRecord], shown: dict[int, str]) -> list[str]:
    """The progress lines of the rows that changed since `shown` (which is updated), in
    the order the changes happened: one poll can see an upstream and its downstream
    both finish, and the downstream's row may be the older one."""
    changed = [row for row in rows if shown.get(row.id) != progress_line(row)]
    changed.sort(key=lambda row: (_reached_at(row), row.id))
    for row in changed:
        shown[row.id] = progress_line(row)
    return [shown[row.id] for row in changed]


def _reached_at(row: TaskInstanceRecord) -> datetime:
    """When the row reached the state it shows."""
    return row.finished_at or row.started_at or row.launched_at or row.created_at


def progress_line(row: TaskInstanceRecord) -> str:
    item = f"[{row.item_index}]" if row.item is not None else ""
    line = f"{row.task_name}{item} try {row.try_number}: {row.state.value}"
    detail = ": ".join(part for part in (row.reason, row.message) if part)
    return f"{line} ({detail})" if detail else line


def _log_reader(logs: LogStore, row: TaskInstanceRecord) -> Callable[[], str | None]:
    key = LogKey(row.key, MAIN_CONTAINER)
    return lambda: logs.read(key)


def _show_results(store: Store, logs: LogStore, run_id: int) -> None:
    with store.transaction() as uow:
        rows = uow.list_task_instances(run_id)
    latest: dict[tuple[str, int], TaskInstanceRecord] = {}
    for row in rows:
        key = (row.task_name, row.item_index)
        if key not in latest or row.try_number > latest[key].try_number:
            latest[key] = row
    ordered = sorted(latest.values(), key=lambda row: row.id)
    print("results:", flush=True)
    for row in ordered:
        item = f"[{row.item_index}]" if row.item is not None else ""
        print(f"  {row.task_name}{item}: {row.state.value}  {row.result or ''}".rstrip())
    print(f"logs (last {LOG_TAIL_LINES} lines of each task):")
    # Logs reach the store when the executor cleans a finished pod up, moments later.
    logs_deadline = time.monotonic() + LOG_WAIT_SECONDS
    for row in ordered:
        text = _wait_for(_log_reader(logs, row), deadline=logs_deadline)
        item = f"[{row.item_index}]" if row.item is not None else ""
        print(f"  --- {row.task_name}{item} ---")
        if text is None:
            print(f"  (no log stored; try `kubedag logs {run_id} {row.task_name}`)")
            continue
        for line in text.splitlines()[-LOG_TAIL_LINES:]:
            print(f"  {line}")
    sys.stdout.flush()
