"""Property tests: random DAGs, random fan-out, rules and outcomes, run to the end.

Each example plays a whole run through `Simulation` and checks, at every step, that
the incremental pass decides exactly what a full pass over the same rows decides, and
that every decision agrees with an independent reading of the trigger rule table. Now
and then the planner is thrown away and rebuilt from the rows, as after a restart.
"""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.engine.admission import admit
from controller.engine.graph import build_graph
from controller.engine.records import NewTry, Plan
from controller.spec.model import Dag, ResultFormat, Task, TriggerRule
from tests.engine.simulation import Simulation, oracle
from tests.engine.support import T0, dag, task

WAITS_FOR_ALL = {
    TriggerRule.ALL_SUCCESS,
    TriggerRule.ALL_FAILED,
    TriggerRule.ALL_DONE,
    TriggerRule.NONE_FAILED,
}


@st.composite
def dags(draw: st.DrawFn) -> Dag:
    size = draw(st.integers(min_value=1, max_value=10))
    tasks: list[Task] = []
    for position in range(size):
        parents = draw(st.sets(st.integers(0, position - 1), max_size=3)) if position else set()
        tasks.append(
            task(
                f"t{position}",
                *(f"t{parent}" for parent in sorted(parents)),
                rule=draw(st.sampled_from(list(TriggerRule))),
                items=draw(st.none() | st.lists(st.integers(), min_size=1, max_size=3)),
                retries=draw(st.integers(0, 2)),
                result_format=draw(st.sampled_from(list(ResultFormat))),
            )
        )
    return dag(*draw(st.permutations(tasks)))


def _summary(plan: Plan) -> tuple[object, ...]:
    return (
        sorted((n.task, n.item_index, n.try_number, n.not_before) for n in plan.create),
        sorted((f.task, f.item_index, f.state.value) for f in plan.finish),
        sorted((r.task, r.item_index, r.try_number) for r in plan.reject),
        plan.run_state,
    )


def _check_decisions(sim: Simulation, plan: Plan) -> None:
    graph = sim.graph
    first_tries = {(n.task, n.item_index) for n in plan.create if n.try_number == 1}
    ends = {(f.task, f.item_index): f.state for f in plan.finish}
    for name, item in first_tries | set(ends):
        position = graph.index[name]
        upstream = [
            sim.terminal_state(graph.tasks[parent].name, index)
            for parent in graph.upstream[position]
            for index in range(graph.fan_out[parent])
        ]
        rule = graph.tasks[position].trigger_rule
        expected = ends.get((name, item), "run")
        assert oracle(rule, upstream) == expected, (name, rule, upstream)
        if expected == "run" and rule in WAITS_FOR_ALL:
            assert None not in upstream
    for new in plan.create:
        if new.try_number > 1:
            before = sim.rows[(new.task, new.item_index, new.try_number - 1)]
            assert before.state is TaskState.FAILED


def _check_end(sim: Simulation, run_state: DagRunState) -> None:
    graph = sim.graph
    for position, spec in enumerate(graph.tasks):
        items = {item for (name, item, _) in sim.rows if name == spec.name}
        assert items == set(range(graph.fan_out[position]))
    for (name, item), number in sim.latest.items():
        tries = [sim.rows[(name, item, n)] for n in range(1, number + 1)]
        spec = graph.tasks[graph.index[name]]
        task_failures = sum(1 for t in tries if t.failure_kind is FailureKind.TASK)
        infra_failures = sum(1 for t in tries if t.failure_kind is FailureKind.INFRA)
        assert task_failures <= spec.retries.limit + 1
        assert infra_failures <= sim.max_infra_retries + 1
        assert number <= spec.retries.limit + 1 + sim.max_infra_retries
        assert tries[-1].state.finished
    good = all(
        sim.rows[(name, item, number)].state in (TaskState.SUCCEEDED, TaskState.SKIPPED)
        for (name, item), number in sim.latest.items()
    )
    assert run_state is (DagRunState.SUCCEEDED if good else DagRunState.FAILED)


@settings(max_examples=150, deadline=None)
@given(the_dag=dags(), rng=st.randoms(use_true_random=False), max_infra=st.integers(0, 2))
def test_random_runs_terminate_and_follow_the_rules(
    the_dag: Dag, rng: random.Random, max_infra: int
) -> None:
    graph = build_graph(the_dag)
    sim = Simulation(graph=graph, rng=rng, max_infra_retries=max_infra)
    planner, plan = sim.start()
    _check_decisions(sim, plan)
    most_tries = sum(
        size * (spec.retries.limit + 2 + max_infra)
        for size, spec in zip(graph.fan_out, graph.tasks, strict=True)
    )
    for _ in range(most_tries + 1):
        if planner.run_state is not None:
            break
        pending = sim.pending()
        assert pending, "the run is stuck: nothing to launch and not finished"
        changes = sim.outcomes(pending)
        _, expected = sim.full_pass()
        plan = planner.advance(changes, now=T0)
        assert _summary(plan) == _summary(expected)
        sim.apply(plan)
        _check_decisions(sim, plan)
        recovered, again = sim.full_pass()
        assert again.decisions == (0 if again.run_state is None else 1)
        if rng.random() < 0.3:
            planner = recovered  # as after a controller restart: carry on from the rows
    run_state = planner.run_state
    assert run_state is not None, "the run did not end within its bound of steps"
    _check_end(sim, run_state)


@st.composite
def pending_tries(draw: st.DrawFn) -> list[NewTry]:
    delays = draw(st.lists(st.none() | st.integers(-60, 60), max_size=30))
    return [
        NewTry("t", index, 1, None, None if d is None else T0 + timedelta(seconds=d))
        for index, d in enumerate(delays)
    ]


@given(
    pending=pending_tries(),
    max_active=st.integers(1, 20),
    active=st.integers(0, 25),
    free=st.integers(0, 25),
)
def test_admission_launches_only_due_tries_within_every_cap(
    pending: list[NewTry], max_active: int, active: int, free: int
) -> None:
    chosen = admit(
        pending, now=T0, max_active_tasks=max_active, active_tasks=active, free_slots=free
    )
    due = [t for t in pending if t.not_before is None or t.not_before <= T0]
    assert chosen.launch == due[: max(0, min(max_active - active, free))]
    waiting = [t.not_before for t in pending if t.not_before is not None and t.not_before > T0]
    assert chosen.next_due == (min(waiting) if waiting else None)
