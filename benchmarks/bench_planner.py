"""Benchmark: plan whole DagRuns of 1,250 / 2,500 / 5,000 tasks, start to finish.

Not a timed test: it prints planner decisions per second, peak memory, and the time
ratio between sizes. Planning a run must cost O(instances + edges), so doubling the
tasks should roughly double the time; a quadratic planner shows ratios near 4.

The DAG is random but seeded: layers of tasks (wide and deep), each depending on one to
three tasks of the few layers above, about one in twenty fanning out over 2-10 items,
some reading an upstream's result in a template, a few percent of tries failing once
and retrying. Tries complete instantly, one watch event per `advance` call (the
engine's worst case: no batching), and every new try is rendered as if launched. Only
the planner's own calls are timed, in CPU time (other load on the machine would skew
the ratios otherwise); the loop that plays the cluster is not timed. Last, the full
pass a restarted controller makes is timed over every row of the finished run.

    .venv/bin/python -m benchmarks.bench_planner            # the 1,250/2,500/5,000 series
    .venv/bin/python -m benchmarks.bench_planner --tasks 20000
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from benchmarks.random_dags import layered_dag
from controller.base.states import FailureKind, RunType, TaskState
from controller.engine.graph import build_graph
from controller.engine.planner import RunPlanner
from controller.engine.records import Plan, RunIdentity, TaskInstanceView
from controller.spec.model import Dag

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Outcome:
    tasks: int
    instances: int
    edges: int
    decisions: int
    events: int
    seconds: float
    recovery_seconds: float
    rows: int


def play(dag: Dag, *, seed: int) -> Outcome:
    """Run one DagRun to its end; return what the planner did and how long it took."""
    rng = random.Random(seed)
    identity = RunIdentity(1, dag.name, T0, "abc123", RunType.SCHEDULED, {})
    started = time.process_time()
    graph = build_graph(dag)
    planner, plan = RunPlanner.recover(graph, identity, [], now=T0)
    planning = time.process_time() - started
    decisions = plan.decisions
    events = 0
    queue: deque[TaskInstanceView] = deque()
    skipped_or_failed = list(plan.finish)

    def launch(plan: Plan) -> float:
        begin = time.process_time()
        for new in plan.create:
            planner.render(new.key)
        spent = time.process_time() - begin
        for new in plan.create:
            failed = new.try_number == 1 and rng.random() < 0.03
            queue.append(
                TaskInstanceView(
                    task=new.task,
                    item_index=new.item_index,
                    try_number=new.try_number,
                    state=TaskState.FAILED if failed else TaskState.SUCCEEDED,
                    failure_kind=FailureKind.TASK if failed else None,
                    result="ok",
                    finished_at=T0,
                )
            )
        return spent

    planning += launch(plan)
    rows: list[TaskInstanceView] = []
    while queue:
        change = queue.popleft()
        rows.append(change)
        begin = time.process_time()
        plan = planner.advance([change], now=T0)
        planning += time.process_time() - begin
        events += 1
        decisions += plan.decisions
        skipped_or_failed.extend(plan.finish)
        planning += launch(plan)
    assert planner.run_state is not None, "the run did not finish"
    rows.extend(
        TaskInstanceView(end.task, end.item_index, 1, end.state) for end in skipped_or_failed
    )
    begin = time.process_time()
    _, final = RunPlanner.recover(graph, identity, rows, now=T0)
    recovery = time.process_time() - begin
    assert final.run_state is planner.run_state
    assert not final.create
    return Outcome(
        tasks=len(dag.tasks),
        instances=graph.instance_count,
        edges=sum(len(up) for up in graph.upstream),
        decisions=decisions,
        events=events,
        seconds=planning,
        recovery_seconds=recovery,
        rows=len(rows),
    )


def peak_memory(dag: Dag, *, seed: int) -> int:
    tracemalloc.start()
    play(dag, seed=seed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="*", default=[1250, 2500, 5000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    options = parser.parse_args()
    previous: Outcome | None = None
    for size in options.tasks:
        dag = layered_dag(size, seed=options.seed, retry_once=True, fan_out=True, shuffled=True)
        best = min(
            (play(dag, seed=options.seed) for _ in range(options.repeat)),
            key=lambda outcome: outcome.seconds,
        )
        peak = peak_memory(dag, seed=options.seed)
        ratio = "" if previous is None else f"  time x{best.seconds / previous.seconds:.2f}"
        scale = "" if previous is None else f" for tasks x{best.tasks / previous.tasks:.2f}"
        print(
            f"{best.tasks:>6} tasks {best.instances:>6} instances {best.edges:>6} edges: "
            f"{best.decisions:>6} decisions, {best.events:>6} events in {best.seconds:.3f}s = "
            f"{best.decisions / best.seconds:,.0f} decisions/s, peak {peak / 2**20:.1f} MiB"
            f"{ratio}{scale}"
        )
        print(
            f"{'':>6} full recovery pass over the finished run's {best.rows} rows: "
            f"{best.recovery_seconds * 1000:.1f} ms"
        )
        previous = best


if __name__ == "__main__":
    main()
