"""Every row of the trigger rule table in docs/run-semantics.md, by full and incremental pass.

The upstreams are `single` (one instance) and `fanned` (two items), so each case has
three upstream instances and shows that a withItems upstream counts once per item.
"""

from __future__ import annotations

import pytest

from controller.base.states import TaskState
from controller.engine.records import Plan, TaskInstanceView
from controller.spec.model import Dag, TriggerRule
from tests.engine.support import T0, dag, finished, row, start, task

S = TaskState.SUCCEEDED
F = TaskState.FAILED
UF = TaskState.UPSTREAM_FAILED
K = TaskState.SKIPPED
R = TaskState.RUNNING

RUN = "run"
WAIT = "wait"

TABLE = [
    (TriggerRule.ALL_SUCCESS, (S, S, S), RUN),
    (TriggerRule.ALL_SUCCESS, (S, S, R), WAIT),
    (TriggerRule.ALL_SUCCESS, (S, F, R), UF),
    (TriggerRule.ALL_SUCCESS, (S, UF, S), UF),
    (TriggerRule.ALL_SUCCESS, (S, K, R), K),
    (TriggerRule.ALL_SUCCESS, (K, F, S), UF),
    (TriggerRule.ALL_FAILED, (F, F, UF), RUN),
    (TriggerRule.ALL_FAILED, (F, F, R), WAIT),
    (TriggerRule.ALL_FAILED, (F, S, R), K),
    (TriggerRule.ALL_FAILED, (F, K, R), K),
    (TriggerRule.ALL_DONE, (S, F, K), RUN),
    (TriggerRule.ALL_DONE, (UF, UF, UF), RUN),
    (TriggerRule.ALL_DONE, (S, F, R), WAIT),
    (TriggerRule.ONE_SUCCESS, (R, S, R), RUN),
    (TriggerRule.ONE_SUCCESS, (F, S, F), RUN),
    (TriggerRule.ONE_SUCCESS, (F, R, R), WAIT),
    (TriggerRule.ONE_SUCCESS, (F, K, UF), UF),
    (TriggerRule.ONE_SUCCESS, (K, K, K), K),
    (TriggerRule.ONE_FAILED, (F, R, R), RUN),
    (TriggerRule.ONE_FAILED, (R, UF, R), RUN),
    (TriggerRule.ONE_FAILED, (S, R, R), WAIT),
    (TriggerRule.ONE_FAILED, (S, K, S), K),
    (TriggerRule.NONE_FAILED, (S, K, S), RUN),
    (TriggerRule.NONE_FAILED, (K, K, K), RUN),
    (TriggerRule.NONE_FAILED, (S, K, R), WAIT),
    (TriggerRule.NONE_FAILED, (K, F, R), UF),
]


def _case_dag(rule: TriggerRule) -> Dag:
    return dag(
        task("single"),
        task("fanned", items=["eu", "us"]),
        task("judged", "single", "fanned", rule=rule),
    )


def _upstream_rows(states: tuple[TaskState, ...]) -> list[TaskInstanceView]:
    single, first, second = states
    return [
        row("single", single),
        row("fanned", first, item=0),
        row("fanned", second, item=1),
    ]


def _outcome(plans: list[Plan]) -> str | TaskState:
    created = [new for plan in plans for new in plan.create if new.task == "judged"]
    ended = [
        state for plan in plans for (name, _), state in finished(plan).items() if name == "judged"
    ]
    assert not (created and ended), "a task is either started or finished, never both"
    if created:
        return RUN
    if ended:
        assert len(ended) == 1
        return ended[0]
    return WAIT


@pytest.mark.parametrize(("rule", "upstream", "expected"), TABLE)
def test_full_pass_follows_the_trigger_rule_table(
    rule: TriggerRule, upstream: tuple[TaskState, ...], expected: str | TaskState
) -> None:
    _, plan = start(_case_dag(rule), _upstream_rows(upstream))
    assert _outcome([plan]) == expected


@pytest.mark.parametrize(("rule", "upstream", "expected"), TABLE)
def test_incremental_pass_follows_the_trigger_rule_table(
    rule: TriggerRule, upstream: tuple[TaskState, ...], expected: str | TaskState
) -> None:
    planner, first = start(_case_dag(rule))
    assert _outcome([first]) == WAIT
    plan = planner.advance(_upstream_rows(upstream), now=T0)
    assert _outcome([plan]) == expected


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_a_task_without_upstreams_runs_whatever_its_rule(rule: TriggerRule) -> None:
    _, plan = start(dag(task("only", rule=rule)))
    assert [(new.task, new.try_number, new.not_before) for new in plan.create] == [
        ("only", 1, None)
    ]


def test_skip_and_upstream_failed_cascade_down_a_chain_in_one_plan() -> None:
    the_dag = dag(
        task("extract"),
        task("transform", "extract"),
        task("load", "transform"),
        task("report", "load", rule=TriggerRule.NONE_FAILED),
        task("cleanup", "report", rule=TriggerRule.ALL_DONE),
    )
    planner, _ = start(the_dag)
    plan = planner.advance([row("extract", TaskState.FAILED)], now=T0)
    assert finished(plan) == {
        ("transform", 0): UF,
        ("load", 0): UF,
        ("report", 0): UF,
    }
    assert [new.task for new in plan.create] == ["cleanup"]


def test_a_decision_is_judged_with_the_whole_batch_known() -> None:
    # allSuccess ranks a failure above a skip: seen together, the failure decides,
    # whatever the order of the changes inside the batch.
    planner, _ = start(
        dag(task("a"), task("b"), task("c", "a", "b")),
        [row("a", TaskState.RUNNING), row("b", TaskState.RUNNING)],
    )
    plan = planner.advance([row("a", K), row("b", F)], now=T0)
    assert finished(plan)[("c", 0)] is UF


def test_a_decision_once_made_stands_when_later_outcomes_would_rank_higher() -> None:
    planner, _ = start(
        dag(task("a"), task("b"), task("c", "a", "b")),
        [row("a", TaskState.RUNNING), row("b", TaskState.RUNNING)],
    )
    first = planner.advance([row("a", K)], now=T0)
    second = planner.advance([row("b", F)], now=T0)
    assert finished(first)[("c", 0)] is K
    assert ("c", 0) not in finished(second)
    assert planner.run_state is not None
