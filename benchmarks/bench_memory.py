"""The engine's memory with 10,000 tracked task instances, and the database's per 1,000 tries.

Memory: a fresh process starts an engine (PostgreSQL store, in-process executor whose
tries never end, so every instance stays tracked) and measures its resident set size
(VmRSS) idle, then again once every task instance of the scenario exists and the
engine holds them all (planners, pending queue, the tries in flight):

- ``runs``: 100 runs of a DAG of 100 independent tasks;
- ``fan-out``: one run of a task with a 10,000-item withItems.

The baseline is the same process before any run: the figure is the RSS and what the
instances added to it, per instance. The target is the RSS: under 300 MB.

Database: 1,000 tries run to success through the engine on an empty database, and the
growth of the database's size (``pg_database_size``) over the empty schema's is divided
per 1,000 tries.

Usage: ``python -m benchmarks.bench_memory``. PostgreSQL from
$KUBEDAG_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
No cluster needed.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from sqlalchemy import text

from benchmarks.bench_pipeline import wait_until
from benchmarks.databases import ROOT, database
from controller.engine.seam import LaunchOrder
from controller.runtime.engine import Engine
from controller.runtime.manual import trigger_run
from controller.spec.model import Dag, Task, dag_to_dict
from controller.store import Store
from tests.runtime.inprocess import InProcessExecutor, Outcome

INSTANCES = 10_000
TIMEOUT_SECONDS = 600.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def task(name: str, **fields: object) -> Task:
    return Task(name=name, image="busybox:1.36", command=("true",), **fields)


def scenario_dag(scenario: str) -> tuple[Dag, int]:
    """The DAG and how many runs of it make 10,000 instances."""
    if scenario == "runs":
        tasks = tuple(task(f"t{index}") for index in range(100))
        return Dag(name="wide", tasks=tasks, max_active_runs=100, max_active_tasks=INSTANCES), 100
    fan = task("fan", with_items=tuple(range(INSTANCES)))
    return Dag(name="fan", tasks=(fan,), max_active_tasks=INSTANCES), 1


def store_dag(store: Store, dag: Dag) -> None:
    with store.transaction() as uow:
        uow.upsert_dag(
            name=dag.name,
            path=f"{dag.name}.yaml",
            revision="0" * 40,
            spec_hash=dag.name,
            spec=dag_to_dict(dag),
        )


def count_instances(store: Store) -> int:
    with store.transaction() as uow:
        return sum(uow.count_task_instances_by_state().values())


def one_scenario(url: str, scenario: str) -> None:
    """Run in a process of its own; prints ``rss <idle MB> <tracked MB>``."""
    store = Store.connect(url)
    release = threading.Event()

    def hold(order: LaunchOrder) -> Outcome:
        release.wait()
        return Outcome.succeeded()

    executor = InProcessExecutor(hold, workers=8)
    engine = Engine(store, executor, parallelism=1024)
    engine.start()
    try:
        dag, runs = scenario_dag(scenario)
        store_dag(store, dag)
        gc.collect()
        idle = rss_mb()
        for _ in range(runs):
            trigger_run(store, dag_name=dag.name, params={})
        wait_until(
            lambda: count_instances(store) >= INSTANCES,
            timeout=TIMEOUT_SECONDS,
            what="every instance",
        )
        wait_until(
            lambda: executor.launches >= 1024, timeout=TIMEOUT_SECONDS, what="the first launches"
        )
        gc.collect()
        print(f"rss {idle:.1f} {rss_mb():.1f}", flush=True)
    finally:
        release.set()
        engine.stop()
        executor.close()
        store.close()


def database_growth(url: str, tries: int) -> float:
    """MB the database grew by running `tries` tries to success."""
    store = Store.connect(url)
    executor = InProcessExecutor(lambda order: Outcome.succeeded("ok"), workers=8)
    engine = Engine(store, executor, parallelism=1024)
    try:
        before = database_size(store)
        dag = Dag(
            name="growth",
            tasks=(task("fan", with_items=tuple(range(tries))),),
            max_active_tasks=tries,
        )
        store_dag(store, dag)
        engine.start()
        run = trigger_run(store, dag_name=dag.name, params={})

        def finished() -> bool:
            with store.transaction() as uow:
                record = uow.get_run(run.id)
            return record is not None and record.state.finished

        wait_until(finished, timeout=TIMEOUT_SECONDS, what="the run")
        with store.engine.connect() as connection:
            connection.execute(text("CHECKPOINT"))
        return (database_size(store) - before) / 1024 / 1024
    finally:
        engine.stop()
        executor.close()
        store.close()


def database_size(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(
            connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        )


def run_scenario(scenario: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as scratch, database("postgresql", Path(scratch)) as url:
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_memory", "--one", scenario, "--url", url],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS * 2,
        ).stdout
    line = next(line for line in output.splitlines() if line.startswith("rss "))
    _, idle, tracked = line.split()
    return float(idle), float(tracked)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=["runs", "fan-out"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tries", type=int, default=1000, help="tries for the database figure")
    args = parser.parse_args(argv)
    if args.one:
        one_scenario(args.url, args.one)
        return 0
    print(f"load average at start {os.getloadavg()[0]:.1f} (2 cores)")
    worst = 0.0
    for scenario, title in (
        ("runs", "100 runs x 100 tasks"),
        ("fan-out", "one 10,000-item fan-out"),
    ):
        idle, tracked = run_scenario(scenario)
        worst = max(worst, tracked)
        per = (tracked - idle) * 1024 / INSTANCES
        print(
            f"  {title:<26} RSS {tracked:6.1f} MB (idle engine {idle:5.1f} MB; "
            f"+{per:.1f} KB per instance)",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as scratch, database("postgresql", Path(scratch)) as url:
        growth = database_growth(url, args.tries)
    print(f"  database growth: {growth * 1000 / args.tries:.2f} MB per 1,000 tries")
    print(f"target: RSS < 300 MB at {INSTANCES:,} tracked instances (worst here {worst:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
