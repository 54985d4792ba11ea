"""Benchmark: whole DagRuns of 1,250 / 2,500 / 5,000 tasks through the Engine and a database.

Not a timed test. Where bench_planner.py times the planner alone, this runs the real
shell: the Engine with the in-process executor completing every try instantly, each
outcome committed through `UpdateSink.apply`, every plan and launch batch written to
the database. It prints, per size: planner decisions per second (decisions over the CPU
time spent inside the planner), tasks per second end to end (wall clock, database
included), and the time ratio to the previous size, which must stay near 2 (linear),
not near 4 (quadratic). Peak memory (tracemalloc) is measured on a separate run of the
largest size, since tracing slows everything down. Last, the hop latency: in a chain
of tasks, the time from an upstream try finishing to its downstream try being launched.

SQLite in a temp dir by default; set KUBEDAG_BENCH_DATABASE_URL to an empty, migrated
or migratable PostgreSQL database to use that instead (its tables are emptied first).

    .venv/bin/python -m benchmarks.bench_engine
    .venv/bin/python -m benchmarks.bench_engine --tasks 10000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from benchmarks.random_dags import layered_dag
from controller.base.states import DagRunState, RunType
from controller.engine.seam import LaunchOrder
from controller.runtime.engine import Engine
from controller.spec.model import Dag, Task, dag_to_dict
from controller.store import Store, create_engine_for, upgrade
from tests.runtime.inprocess import InProcessExecutor, Outcome

WIDTHS = (7, 10, 14, 9, 8, 6)
LOGICAL_DATE = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Result:
    tasks: int
    decisions: int
    planning_seconds: float
    wall_seconds: float


def chain_dag(length: int) -> Dag:
    specs = [
        Task(name=f"c{n}", image="busybox", depends_on=(f"c{n - 1}",) if n else ())
        for n in range(length)
    ]
    return Dag(name="chain", tasks=tuple(specs))


def instantly(order: LaunchOrder) -> Outcome:
    return Outcome.succeeded("ok")


def open_store(url: str) -> Store:
    upgrade(url)
    store = Store(create_engine_for(url))
    with store.engine.begin() as connection:
        for table in ("events", "task_instances", "dag_runs", "dags", "watch_cursors"):
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
    return store


def run_once(url: str, dag: Dag) -> tuple[Result, Store, int]:
    store = open_store(url)
    with store.transaction() as uow:
        uow.upsert_dag(
            name=dag.name,
            path="dags/bench.yaml",
            revision="a" * 40,
            spec_hash=dag.name,
            spec=dag_to_dict(dag),
        )
        run, _ = uow.create_run(
            dag_name=dag.name,
            logical_date=LOGICAL_DATE,
            run_type=RunType.MANUAL,
            revision="a" * 40,
            spec=dag_to_dict(dag),
        )
    executor = InProcessExecutor(instantly, workers=8)
    engine = Engine(store, executor, parallelism=len(dag.tasks))
    began = time.perf_counter()
    engine.start(background=False)
    engine.wake([run.id])
    engine.run_until_idle(timeout=3600)
    wall = time.perf_counter() - began
    engine.stop()
    executor.close()
    with store.transaction() as uow:
        finished = uow.get_run(run.id)
    assert finished is not None
    assert finished.state is DagRunState.SUCCEEDED, finished.state
    result = Result(len(dag.tasks), engine.stats.decisions, engine.stats.planning_seconds, wall)
    return result, store, run.id


def hop_latency(url: str) -> list[float]:
    _, store, run_id = run_once(url, chain_dag(60))
    with store.transaction() as uow:
        rows = {row.task_name: row for row in uow.list_task_instances(run_id)}
    store.close()
    hops: list[float] = []
    for n in range(1, 60):
        upstream, downstream = rows[f"c{n - 1}"], rows[f"c{n}"]
        assert upstream.finished_at is not None
        assert downstream.launched_at is not None
        hops.append((downstream.launched_at - upstream.finished_at).total_seconds() * 1000)
    return hops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000, help="the largest size (default 5000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubedag-bench-") as scratch:
        url = (
            os.environ.get("KUBEDAG_BENCH_DATABASE_URL")
            or f"sqlite:///{Path(scratch) / 'bench.db'}"
        )
        backend = url.split(":", 1)[0]
        print(f"engine benchmark on {backend}, in-process executor completing tries instantly")
        header = ("tasks", "decisions", "planner dec/s", "tasks/s", "wall s", "ratio")
        print(" ".join(f"{title:>{width}}" for title, width in zip(header, WIDTHS, strict=True)))
        previous: Result | None = None
        sizes = [args.tasks // 4, args.tasks // 2, args.tasks]
        for size in sizes:
            result, store, _ = run_once(url, layered_dag(size, seed=size))
            store.close()
            ratio = (
                "" if previous is None else f"{result.wall_seconds / previous.wall_seconds:6.2f}"
            )
            rate = (
                result.decisions / result.planning_seconds
                if result.planning_seconds
                else float("inf")
            )
            cells = (
                f"{result.tasks}",
                f"{result.decisions}",
                f"{rate:,.0f}",
                f"{result.tasks / result.wall_seconds:,.0f}",
                f"{result.wall_seconds:.2f}",
                ratio,
            )
            print(" ".join(f"{cell:>{width}}" for cell, width in zip(cells, WIDTHS, strict=True)))
            previous = result
        tracemalloc.start()
        _, store, _ = run_once(url, layered_dag(args.tasks, seed=args.tasks))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        store.close()
        print(f"peak memory (tracemalloc) for {args.tasks} tasks: {peak / 2**20:.1f} MiB")
        hops = hop_latency(url)
        print(
            f"upstream finished -> downstream launched over a 60-task chain: "
            f"median {statistics.median(hops):.1f} ms, max {max(hops):.1f} ms"
        )


if __name__ == "__main__":
    main()
