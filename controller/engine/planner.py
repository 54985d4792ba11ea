"""The planner of one DagRun: given its task instances' states, what happens next.

Pure in the sense that matters (no I/O, no clock, no database), but not stateless: a
`RunPlanner` is a small mutable index of one run that the engine keeps in memory while
the run is active. That is what keeps a whole run at O(instances + edges) planner work
instead of re-reading every row and re-judging every task on every pod event.

Two entry points, one logic:

- `RunPlanner.recover(graph, identity, rows, now=...)` is the full pass, used when a run
  starts (no rows yet) and after a controller restart (all rows). One topological sweep.
- `planner.advance(changes, now=...)` is the incremental pass: feed it the rows whose
  state just changed (watch events); it judges only the tasks downstream of them.

Both sweep the touched tasks in topological order, so a batch of changes is judged with
all of its effects known, exactly as a full pass over the same rows would judge it.

The engine applies every `Plan` it gets (inserting the new rows, recording the finished
and rejected ones) before calling `advance` again: the planner assumes its own decisions
happened. If applying fails (a compare-and-set lost to another writer), the engine drops
the planner and calls `recover` with fresh rows; plans are idempotent over the store's
unique (run, task, item, try), so deciding again is harmless.

A FAILED try is retried (see `retries`) before its instance counts as failed for trigger
rules: downstream tasks only ever see an instance's final outcome.

Operators act on finished instances through rows too, so `recover` is all it takes to
plan after them: a CLEARED row (an operator's retry) makes its instance undecided again,
with fresh failure budgets, and the trigger rule then decides its next try; a try an
operator marked FAILED is final, never retried; a CANCELLED try counts as a failure.

A dynamic fan-out (`withItems: "{{ tasks.NAME.result }}"`) counts as one instance until
its trigger rule lets it run; it is then expanded from NAME's result (see `expansion`)
and all its first tries go into one Plan, so they are written in one transaction before
any is launched. A task that has rows is never expanded again: `recover` reads its
items back from the rows.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from controller.base.states import DagRunState, FailureKind, TaskState
from controller.engine.expansion import ExpansionError, expand, expanded_items
from controller.engine.graph import RunGraph
from controller.engine.records import (
    FinishedInstance,
    InstanceKey,
    InstanceOutcome,
    Instances,
    NewTry,
    Plan,
    RejectedResult,
    RunFailing,
    RunIdentity,
    TaskInstanceView,
)
from controller.engine.rendering import RenderedTask, ResultError, parse_result, render_task
from controller.engine.retries import DEFAULT_MAX_INFRA_RETRIES, retry_at
from controller.engine.triggers import Decision, UpstreamSummary, task_flags
from controller.spec.model import JSON

_DECISION_STATES = {
    Decision.SKIP: TaskState.SKIPPED,
    Decision.UPSTREAM_FAILED: TaskState.UPSTREAM_FAILED,
}
_FAILED_OUTCOMES = (TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED)


class _Instance:
    """The latest try of one (task, item) and the failure budgets spent on it."""

    __slots__ = ("infra_failures", "result", "state", "task_failures", "terminal", "try_number")

    def __init__(self) -> None:
        self.try_number = 0  # 0: no try yet
        self.state: TaskState | None = None
        self.task_failures = 0
        self.infra_failures = 0
        self.result: JSON = None
        self.terminal = False  # finished for good: no further try will come

    @property
    def awaiting(self) -> bool:
        """No try decided yet: never tried, or cleared by an operator since."""
        return self.try_number == 0 or self.state is TaskState.CLEARED


class RunPlanner:
    """The planning state of one active DagRun. Build it with `recover`."""

    def __init__(
        self,
        graph: RunGraph,
        identity: RunIdentity,
        *,
        max_infra_retries: int = DEFAULT_MAX_INFRA_RETRIES,
    ) -> None:
        self._graph = graph
        self._identity = identity
        self._max_infra_retries = max_infra_retries
        self._instances = [[_Instance() for _ in range(size)] for size in graph.fan_out]
        self._sizes = list(graph.fan_out)
        self._instance_count = graph.instance_count
        self._expansions: dict[int, tuple[JSON, ...]] = {}  # dynamic fan-outs expanded
        self._decided = [False] * len(graph.tasks)
        self._outcomes = [[0, 0, 0] for _ in graph.tasks]  # succeeded, failed, skipped
        self._flags = [0] * len(graph.tasks)
        self._summaries = [UpstreamSummary(len(up)) for up in graph.upstream]
        self._results: dict[int, JSON] = {}
        self._partial: set[int] = set()  # decided tasks some of whose instances have no row
        self._terminal = 0
        self._failed = 0
        self._failing_told = False

    @classmethod
    def recover(
        cls,
        graph: RunGraph,
        identity: RunIdentity,
        rows: Iterable[TaskInstanceView],
        *,
        now: datetime,
        max_infra_retries: int = DEFAULT_MAX_INFRA_RETRIES,
    ) -> tuple[RunPlanner, Plan]:
        """The full pass: index every row of the run (all tries) and decide everything due."""
        planner = cls(graph, identity, max_infra_retries=max_infra_retries)
        plan = Plan()
        rows = list(rows)
        planner._restore_expansions(rows)
        latest = planner._load(rows)
        planner._partial = {
            task
            for task, instances in enumerate(planner._instances)
            if planner._decided[task] and any(i.awaiting for i in instances)
        }
        for position, view in latest.items():
            planner._settle(position, view, now=now, plan=plan)
        planner._sweep(list(range(len(graph.tasks))), plan=plan)
        planner._conclude(plan)
        return planner, plan

    def advance(self, changes: Iterable[TaskInstanceView], *, now: datetime) -> Plan:
        """The incremental pass: take rows whose state changed, decide what follows.

        Stale (an older try) and repeated changes, and changes to instances already
        finished for good, are ignored, so replayed watch events are harmless.
        """
        plan = Plan()
        touched: list[int] = []
        for view in changes:
            task = self._graph.index[view.task]
            instance = self._instances[task][view.item_index]
            if instance.terminal or view.try_number < instance.try_number:
                continue
            if view.try_number == instance.try_number and instance.state is view.state:
                continue
            if view.state is TaskState.FAILED:
                self._count_failure(instance, view.failure_kind)
            instance.try_number = view.try_number
            instance.state = view.state
            self._decided[task] = True
            if self._settle((task, view.item_index), view, now=now, plan=plan):
                touched.append(task)
                if instance.state is TaskState.FAILED and not view.marked:
                    plan.exhausted.append(InstanceKey(view.task, view.item_index))
        self._sweep(touched, plan=plan)
        self._conclude(plan)
        return plan

    @property
    def run_state(self) -> DagRunState | None:
        """SUCCEEDED or FAILED once every instance is finished for good, else None."""
        if self._terminal < self._instance_count:
            return None
        return DagRunState.FAILED if self._failed else DagRunState.SUCCEEDED

    def render(self, key: InstanceKey) -> RenderedTask:
        """The command, args and env of `key`'s pod, with upstream results filled in.

        A task that did not succeed reads as null (a withItems task: null in its place in
        the array). Raises TemplateError when a template cannot be rendered.
        """
        position = self._graph.index[key.task]
        results = {
            self._graph.tasks[read].name: self._task_result(read)
            for read in self._graph.reads[position]
        }
        return render_task(
            self._graph.tasks[position],
            identity=self._identity,
            item_index=key.item_index,
            item=self._item(position, key.item_index),
            task_results=results,
        )

    def item(self, task: str, item_index: int) -> JSON:
        """The item of one instance (None without withItems or before an expansion)."""
        return self._item(self._graph.index[task], item_index)

    def _dynamic(self, task: int) -> bool:
        return bool(self._graph.items_from) and self._graph.items_from[task] is not None

    def _restore_expansions(self, rows: list[TaskInstanceView]) -> None:
        """Read back the items of the dynamic fan-outs that were expanded before."""
        dynamic = {spec.name for task, spec in enumerate(self._graph.tasks) if self._dynamic(task)}
        for name, items in expanded_items(rows, dynamic).items():
            self._set_expansion(self._graph.index[name], items)

    def _set_expansion(self, task: int, items: tuple[JSON, ...]) -> None:
        self._expansions[task] = items
        size = max(len(items), 1)  # an empty expansion keeps one instance: the skipped one
        self._instance_count += size - self._sizes[task]
        self._sizes[task] = size
        self._instances[task] = [_Instance() for _ in range(size)]

    def _expand(self, task: int, *, plan: Plan) -> None:
        """Fan `task` out over its source's result: first tries, a skip, or a failure."""
        spec = self._graph.tasks[task]
        source = self._graph.items_from[task]
        assert source is not None
        try:
            items = expand(spec, self._task_result(source))
        except ExpansionError as error:
            self._finish_unexpanded(
                task, TaskState.FAILED, plan=plan, kind=FailureKind.EXPANSION, message=str(error)
            )
            return
        if not items:
            message = f"withItems of {spec.name!r}: tasks.{spec.items_from}.result is empty"
            self._expansions[task] = ()
            self._finish_unexpanded(task, TaskState.SKIPPED, plan=plan, message=message)
            return
        # Tries an unexpanded instance had before an operator cleared it keep counting.
        earlier = self._instances[task][0].try_number
        self._set_expansion(task, items)
        for item, instance in enumerate(self._instances[task]):
            instance.try_number = earlier + 1 if item == 0 else 1
            instance.state = TaskState.PENDING
            plan.create.append(NewTry(spec.name, item, instance.try_number, items[item], None))

    def _finish_unexpanded(
        self,
        task: int,
        state: TaskState,
        *,
        plan: Plan,
        kind: FailureKind | None = None,
        message: str | None = None,
    ) -> None:
        instance = self._instances[task][0]
        instance.try_number += 1
        name = self._graph.tasks[task].name
        plan.finish.append(
            FinishedInstance(
                name, 0, state, instance.try_number, failure_kind=kind, message=message
            )
        )
        self._finish(task, instance, state)

    def _load(self, rows: Iterable[TaskInstanceView]) -> dict[tuple[int, int], TaskInstanceView]:
        latest: dict[tuple[int, int], TaskInstanceView] = {}
        # In try order, so a CLEARED row resets the budgets the tries before it spent.
        for view in sorted(rows, key=lambda row: (row.task, row.item_index, row.try_number)):
            position = (self._graph.index[view.task], view.item_index)
            instance = self._instances[position[0]][position[1]]
            if view.state is TaskState.FAILED:
                self._count_failure(instance, view.failure_kind)
            elif view.state is TaskState.CLEARED:
                instance.task_failures = instance.infra_failures = 0
            self._decided[position[0]] = True
            if view.try_number > instance.try_number:
                instance.try_number = view.try_number
                instance.state = view.state
                latest[position] = view
        return latest

    @staticmethod
    def _count_failure(instance: _Instance, kind: FailureKind | None) -> None:
        if kind is FailureKind.INFRA:
            instance.infra_failures += 1
        else:
            instance.task_failures += 1

    def _settle(
        self, position: tuple[int, int], view: TaskInstanceView, *, now: datetime, plan: Plan
    ) -> bool:
        """Judge an instance's latest try; True when the instance just finished for good."""
        task, item = position
        instance = self._instances[task][item]
        state = view.state
        if state is TaskState.SUCCEEDED:
            try:
                instance.result = parse_result(self._graph.tasks[task], view.result)
            except ResultError as error:
                plan.reject.append(
                    RejectedResult(self._graph.tasks[task].name, item, view.try_number, str(error))
                )
                self._count_failure(instance, FailureKind.TASK)
                view = replace(view, state=TaskState.FAILED, failure_kind=FailureKind.TASK)
                instance.state = state = TaskState.FAILED
        if (
            state is TaskState.FAILED
            and not view.marked
            and self._retry(task, item, view, now=now, plan=plan)
        ):
            return False
        if not state.finished:
            return False
        self._finish(task, instance, state)
        return True

    def _retry(
        self, task: int, item: int, view: TaskInstanceView, *, now: datetime, plan: Plan
    ) -> bool:
        instance = self._instances[task][item]
        not_before = retry_at(
            policy=self._graph.tasks[task].retries,
            kind=view.failure_kind or FailureKind.TASK,
            task_failures=instance.task_failures,
            infra_failures=instance.infra_failures,
            finished_at=view.finished_at or now,
            max_infra_retries=self._max_infra_retries,
        )
        if not_before is None:
            return False
        instance.try_number += 1
        instance.state = TaskState.PENDING
        plan.create.append(
            NewTry(
                self._graph.tasks[task].name,
                item,
                instance.try_number,
                self._item(task, item),
                not_before,
            )
        )
        return True

    def _finish(self, task: int, instance: _Instance, state: TaskState) -> None:
        instance.state = state
        instance.terminal = True
        self._terminal += 1
        outcomes = self._outcomes[task]
        if state is TaskState.SUCCEEDED:
            outcomes[0] += 1
        elif state in _FAILED_OUTCOMES:
            outcomes[1] += 1
            self._failed += 1
        else:
            outcomes[2] += 1

    def _item(self, task: int, item: int) -> JSON:
        items = self._graph.tasks[task].with_items
        if items is None:
            items = self._expansions.get(task)
        return None if items is None or item >= len(items) else items[item]

    def _sweep(self, touched: list[int], *, plan: Plan) -> None:
        """Judge touched tasks and their undecided downstreams, in topological order."""
        heap = sorted(set(touched))
        queued = set(heap)
        graph = self._graph
        while heap:
            task = heapq.heappop(heap)
            queued.discard(task)
            if not self._decided[task] or task in self._partial:
                self._decide(task, plan=plan)
            succeeded, failed, skipped = self._outcomes[task]
            flags = task_flags(
                size=self._sizes[task], succeeded=succeeded, failed=failed, skipped=skipped
            )
            raised = flags & ~self._flags[task]
            if not raised:
                continue
            self._flags[task] = flags
            for child in graph.downstream[task]:
                self._summaries[child].raise_flags(raised)
                undecided = not self._decided[child] or child in self._partial
                if undecided and child not in queued:
                    queued.add(child)
                    heapq.heappush(heap, child)

    def _decide(self, task: int, *, plan: Plan) -> None:
        """Apply the trigger rule to the instances of `task` awaiting a try."""
        spec = self._graph.tasks[task]
        decision = self._summaries[task].decide(spec.trigger_rule)
        if decision is Decision.WAIT:
            return
        self._decided[task] = True
        self._partial.discard(task)
        if decision is Decision.RUN and self._dynamic(task) and task not in self._expansions:
            self._expand(task, plan=plan)
            return
        for item, instance in enumerate(self._instances[task]):
            if not instance.awaiting:
                continue
            instance.try_number += 1
            if decision is Decision.RUN:
                instance.state = TaskState.PENDING
                plan.create.append(
                    NewTry(spec.name, item, instance.try_number, self._item(task, item), None)
                )
            else:
                state = _DECISION_STATES[decision]
                plan.finish.append(FinishedInstance(spec.name, item, state, instance.try_number))
                self._finish(task, instance, state)

    def _task_result(self, task: int) -> JSON:
        if task in self._results:
            return self._results[task]
        values = [
            instance.result if instance.state is TaskState.SUCCEEDED else None
            for instance in self._instances[task]
        ]
        if self._dynamic(task) and not self._expansions.get(task):
            values = []  # never expanded, or expanded to nothing: no instance ran
        value = values if self._graph.tasks[task].fans_out else values[0]
        if sum(self._outcomes[task]) == self._sizes[task]:
            self._results[task] = value  # every instance is final: the value cannot change
        return value

    def _conclude(self, plan: Plan) -> None:
        plan.run_state = self.run_state
        if plan.run_state is DagRunState.FAILED:
            plan.failed = self._listed(failed=True)
        elif self._failed and not self._failing_told:
            # The run cannot succeed any more, but it ends only once every instance is
            # finished for good: tries that run finish, retries that wait still run.
            plan.failing = RunFailing(
                failed=self._listed(failed=True), unfinished=self._listed(failed=False)
            )
        self._failing_told = self._failing_told or bool(self._failed)

    def _listed(self, *, failed: bool) -> Instances:
        """The instances that failed for good (`failed`), or those not finished for good,
        in the DAG's task order.

        Linear in the run's instances: called when the run starts failing and when it
        ends, never per event."""
        listed: list[InstanceOutcome] = []
        total = 0
        for task, instances in enumerate(self._instances):
            name = self._graph.tasks[task].name
            for item, instance in enumerate(instances):
                if failed:
                    wanted = instance.terminal and instance.state in _FAILED_OUTCOMES
                else:
                    wanted = not instance.terminal
                if not wanted:
                    continue
                total += 1
                if len(listed) < Instances.LISTED:
                    state = instance.state if instance.try_number else None
                    listed.append(InstanceOutcome(name, item, instance.try_number, state))
        return Instances(tuple(listed), total)
