"""Benchmark: the web UI's pages for a DAG with a 2,000-item fan-out and 500 runs, in Chromium.

Not a timed test. It fills a database with 500 finished runs of a DAG whose middle task
fans out to 2,000 items (1,001,000 task instances), serves the UI and its API from the
controller's HTTP server, and loads each page in Debian's headless Chromium, timing from
the start of navigation until the page shows its data (the grid's cells, the graph's
nodes and the first page of instances). The baseline, measured in the same run, is the
same page for a DAG of one task with one run: the ratio says what scale costs. Target:
every page under 2 s. It also times the JSON answers behind the pages on their own.

SQLite in a temp dir by default; set KUBEDAG_BENCH_DATABASE_URL to an empty, migrated
or migratable PostgreSQL database to use that instead (its tables are emptied first).

    .venv/bin/python -m benchmarks.bench_ui
    .venv/bin/python -m benchmarks.bench_ui --runs 100 --items 500
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes.client
from sqlalchemy import text

from controller.base.states import DagRunState, RunType, TaskState
from controller.logstore import LogStore
from controller.metrics import Metrics
from controller.process.http import HttpServer
from controller.spec.model import Dag, Task, dag_to_dict
from controller.store import NewTaskInstance, Store, create_engine_for, upgrade
from controller.ui.endpoints import UiEndpoints
from tests.ui.browser import Browser, chromium

REPEATS = 5
START = datetime(2025, 1, 1, tzinfo=UTC)
COLUMNS = "task_name, item_index, item, try_number, state, created_at, updated_at"

# Resolves with the time since navigation started once `ready()` holds on a new frame.
WAIT_FOR = """
const [ready, done] = [new Function(arguments[0]), arguments[arguments.length - 1]];
const check = () => (ready() ? done(performance.now()) : requestAnimationFrame(check));
check();
"""


def open_store(url: str) -> Store:
    upgrade(url)
    store = Store(create_engine_for(url))
    with store.engine.begin() as connection:
        for table in ("events", "task_instances", "dag_runs", "dags", "watch_cursors"):
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
    return store


def fill(store: Store, *, name: str, items: int, runs: int) -> int:
    """A DAG prepare -> work (x items) -> report with `runs` finished runs; the newest's id."""
    tasks = [Task(name="prepare", image="busybox")]
    if items > 1:
        fan_out = tuple(range(items))
        tasks.append(
            Task(name="work", image="busybox", depends_on=("prepare",), with_items=fan_out)
        )
        tasks.append(Task(name="report", image="busybox", depends_on=("work",)))
    spec = dag_to_dict(Dag(name=name, tasks=tuple(tasks)))
    with store.transaction() as uow:
        uow.upsert_dag(name=name, path=f"{name}.yaml", revision="a" * 40, spec_hash="h", spec=spec)
        ids = [
            uow.create_run(
                dag_name=name,
                logical_date=START + timedelta(hours=hour),
                run_type=RunType.SCHEDULED,
                revision="a" * 40,
                spec=spec,
                state=DagRunState.FAILED,
            )[0].id
            for hour in range(runs)
        ]
        first = [NewTaskInstance(run_id=ids[0], task_name="prepare", state=TaskState.SUCCEEDED)]
        if items > 1:
            first += [
                NewTaskInstance(
                    run_id=ids[0],
                    task_name="work",
                    item_index=i,
                    item=i,
                    # One item in 97 fails, so cells and nodes show mixed counts.
                    state=TaskState.FAILED if i % 97 == 0 else TaskState.SUCCEEDED,
                )
                for i in range(items)
            ]
            first.append(
                NewTaskInstance(run_id=ids[0], task_name="report", state=TaskState.UPSTREAM_FAILED)
            )
        uow.add_task_instances(first)
    # Copying the first run's rows in SQL fills a million rows in seconds, not minutes.
    with store.engine.begin() as connection:
        for run_id in ids[1:]:
            connection.execute(
                text(
                    f"INSERT INTO task_instances (run_id, {COLUMNS}) "  # noqa: S608 - fixed names
                    f"SELECT :run_id, {COLUMNS} FROM task_instances WHERE run_id = :first"
                ),
                {"run_id": run_id, "first": ids[0]},
            )
    # A database that grew to this size over time has planner statistics; give them.
    with store.engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    return ids[-1]


def page_seconds(browser: Browser, route: str, ready: str) -> float:
    """Median time from navigation start until `ready` (a JS expression) holds."""
    times = []
    for _ in range(REPEATS):
        browser.driver.get("about:blank")
        browser.open(route)
        elapsed = browser.driver.execute_async_script(WAIT_FOR, f"return {ready};")
        times.append(float(elapsed) / 1000)
    return statistics.median(times)


def json_seconds(base: str, path: str) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        with urllib.request.urlopen(f"{base}/api/v1{path}", timeout=30) as response:  # noqa: S310
            response.read()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="runs of the big DAG (default 500)")
    parser.add_argument("--items", type=int, default=2000, help="its fan-out (default 2000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubedag-bench-") as scratch:
        url = os.environ.get("KUBEDAG_BENCH_DATABASE_URL") or f"sqlite:///{Path(scratch) / 'b.db'}"
        store = open_store(url)
        started = time.perf_counter()
        big_run = fill(store, name="big", items=args.items, runs=args.runs)
        small_run = fill(store, name="small", items=1, runs=1)
        instances = args.runs * (args.items + 2)
        print(
            f"UI benchmark on {url.split(':', 1)[0]}: {args.runs} runs x {args.items + 2} "
            f"instances ({instances:,} rows, filled in {time.perf_counter() - started:.1f}s)"
        )
        endpoints = UiEndpoints(
            store=store,
            log_store=LogStore(str(Path(scratch) / "logs")),
            api=kubernetes.client.ApiClient(),
            namespace="default",
            token=None,
            repo_url=None,
            wake=lambda run_ids: None,
        )
        server = HttpServer(metrics=Metrics(), host="127.0.0.1", port=0, api=endpoints.handle)
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            pages = [
                (
                    "runs grid (25 runs)",
                    "/dags/{dag}",
                    "/dags/{dag}/grid?limit=25",
                    "document.querySelectorAll('table.grid td .cell').length > 0",
                ),
                (
                    "run graph + instances",
                    "/runs/{run}",
                    "/runs/{run}/graph",
                    "document.querySelectorAll('#graph .node').length > 0"
                    " && document.querySelectorAll('table.instances tbody tr').length > 0",
                ),
            ]
            header = f"{'page':<24}{'1 task, 1 run':>15}{'big DAG':>10}{'ratio':>8}  target 2 s"
            with chromium(base) as browser:
                print(header)
                for title, route, _, ready in pages:
                    small = page_seconds(browser, route.format(dag="small", run=small_run), ready)
                    big = page_seconds(browser, route.format(dag="big", run=big_run), ready)
                    verdict = "met" if big < 2.0 else "MISSED"
                    print(f"{title:<24}{small:>14.3f}s{big:>9.3f}s{big / small:>8.2f}  {verdict}")
            print(f"{'JSON behind the page':<24}{'1 task, 1 run':>15}{'big DAG':>10}{'ratio':>8}")
            for title, _, path, _ in pages:
                small = json_seconds(base, path.format(dag="small", run=small_run))
                big = json_seconds(base, path.format(dag="big", run=big_run))
                print(f"{title:<24}{small:>14.3f}s{big:>9.3f}s{big / small:>8.2f}")
        finally:
            server.stop()
            store.close()


if __name__ == "__main__":
    main()
