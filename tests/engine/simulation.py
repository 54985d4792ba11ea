"""A tiny in-memory run loop for property tests: rows, a planner, and random outcomes.

It plays the engine's part exactly as the planner's contract says: apply every plan
(insert new tries, record finished instances and rejected results) before the next
batch of changes. Alongside, it judges trigger rules again from the rows with a
straightforward count over upstream instances (the table of docs/run-semantics.md), so
the planner's flag arithmetic is checked against an independent reading of the rules.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from controller.base.states import FailureKind, TaskState
from controller.engine.graph import RunGraph
from controller.engine.planner import RunPlanner
from controller.engine.records import Plan, TaskInstanceView
from controller.spec.model import ResultFormat, TriggerRule
from tests.engine.support import T0, identity

Row = TaskInstanceView


def oracle(rule: TriggerRule, upstream: list[TaskState | None]) -> str | TaskState:
    """The trigger table over upstream instances (None: not finished for good)."""
    if not upstream:
        return "run"
    total = len(upstream)
    succeeded = upstream.count(TaskState.SUCCEEDED)
    failed = upstream.count(TaskState.FAILED) + upstream.count(TaskState.UPSTREAM_FAILED)
    skipped = upstream.count(TaskState.SKIPPED)
    done = succeeded + failed + skipped == total
    if rule is TriggerRule.ALL_SUCCESS:
        if failed:
            return TaskState.UPSTREAM_FAILED
        if skipped:
            return TaskState.SKIPPED
        return "run" if succeeded == total else "wait"
    if rule is TriggerRule.ALL_FAILED:
        if succeeded or skipped:
            return TaskState.SKIPPED
        return "run" if failed == total else "wait"
    if rule is TriggerRule.ALL_DONE:
        return "run" if done else "wait"
    if rule is TriggerRule.ONE_SUCCESS:
        if succeeded:
            return "run"
        if not done:
            return "wait"
        return TaskState.SKIPPED if skipped == total else TaskState.UPSTREAM_FAILED
    if rule is TriggerRule.ONE_FAILED:
        if failed:
            return "run"
        return TaskState.SKIPPED if done else "wait"
    if failed:
        return TaskState.UPSTREAM_FAILED
    return "run" if done else "wait"


@dataclass
class Simulation:
    graph: RunGraph
    rng: random.Random
    max_infra_retries: int
    rows: dict[tuple[str, int, int], Row] = field(default_factory=dict)
    latest: dict[tuple[str, int], int] = field(default_factory=dict)
    steps: int = 0

    def start(self) -> tuple[RunPlanner, Plan]:
        planner, plan = RunPlanner.recover(
            self.graph, identity(), [], now=T0, max_infra_retries=self.max_infra_retries
        )
        self.apply(plan)
        return planner, plan

    def full_pass(self) -> tuple[RunPlanner, Plan]:
        return RunPlanner.recover(
            self.graph,
            identity(),
            list(self.rows.values()),
            now=T0,
            max_infra_retries=self.max_infra_retries,
        )

    def apply(self, plan: Plan) -> None:
        for rejected in plan.reject:
            key = (rejected.task, rejected.item_index, rejected.try_number)
            self.rows[key] = replace(
                self.rows[key], state=TaskState.FAILED, failure_kind=FailureKind.TASK
            )
        for new in plan.create:
            self._put(Row(new.task, new.item_index, new.try_number, TaskState.PENDING, None, None))
        for end in plan.finish:
            self._put(Row(end.task, end.item_index, 1, end.state))

    def _put(self, row: Row) -> None:
        key = (row.task, row.item_index, row.try_number)
        assert key not in self.rows, f"try {key} created twice"
        self.rows[key] = row
        self.latest[(row.task, row.item_index)] = max(
            row.try_number, self.latest.get((row.task, row.item_index), 0)
        )

    def pending(self) -> list[Row]:
        return [r for r in self.rows.values() if r.state is TaskState.PENDING]

    def outcomes(self, rows: Iterable[Row]) -> list[Row]:
        """Finish a random choice of the given tries, each with a random outcome."""
        chosen = [r for r in rows if self.rng.random() < 0.6] or list(rows)[:1]
        finished = []
        for row in chosen:
            roll = self.rng.random()
            spec = self.graph.tasks[self.graph.index[row.task]]
            if roll < 0.6:
                result = "1" if spec.result_format is ResultFormat.JSON else "out"
                if spec.result_format is ResultFormat.JSON and self.rng.random() < 0.1:
                    result = "{broken"
                change = replace(row, state=TaskState.SUCCEEDED, result=result, finished_at=T0)
            else:
                kind = FailureKind.TASK if roll < 0.85 else FailureKind.INFRA
                change = replace(row, state=TaskState.FAILED, failure_kind=kind, finished_at=T0)
            self.rows[(row.task, row.item_index, row.try_number)] = change
            finished.append(change)
        return finished

    def terminal_state(self, task: str, item: int) -> TaskState | None:
        """An instance's outcome if it is finished for good, as the oracle sees it."""
        number = self.latest.get((task, item))
        if number is None:
            return None
        state = self.rows[(task, item, number)].state
        return state if state.finished else None
