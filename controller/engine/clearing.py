"""Which task instances an operator's retry (or mark) sends back to the planner.

Pure: given a run's graph and the state of each instance's latest try, answer which
instances to clear. A cleared instance gets a CLEARED row and is decided again by its
trigger rule (see the planner), so a retry never launches a task whose upstreams have
not finished again first.

- A retry of a run clears every instance that failed, was cancelled or never ran for an
  upstream failure, and the unsuccessful finished instances of every task downstream of
  those (a skip may have come from the failure too). Succeeded instances stay.
- A retry of one task clears that task's finished instances (or one item's) and every
  finished instance downstream of it, whatever its state: the task's new result may
  change what they do.
- Marking an instance clears the finished instances downstream of it, so they proceed
  as if it had ended the way it was marked.

Also here: whether a run's rows fit another version of its DAG (`--latest`), since a
version that dropped a task or shrank a fan-out cannot carry the run's history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controller.base.states import TaskState
from controller.engine.graph import RunGraph

InstanceRef = tuple[str, int]
RETRYABLE = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED})
_UNSUCCESSFUL = RETRYABLE | {TaskState.SKIPPED}


def downstream_tasks(graph: RunGraph, tasks: Iterable[str]) -> set[str]:
    """Every task reachable downstream of `tasks`, not counting them."""
    seen: set[int] = set()
    stack = [graph.index[name] for name in tasks]
    while stack:
        for child in graph.downstream[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return {graph.tasks[position].name for position in seen}


def failed_to_clear(graph: RunGraph, latest: Mapping[InstanceRef, TaskState]) -> list[InstanceRef]:
    """A run's retry: its unsuccessful instances and those they held back downstream."""
    start = {ref for ref, state in latest.items() if state in RETRYABLE}
    below = downstream_tasks(graph, {task for task, _ in start})
    chosen = start | {
        ref for ref, state in latest.items() if ref[0] in below and state in _UNSUCCESSFUL
    }
    return sorted(chosen)


def task_to_clear(
    graph: RunGraph,
    latest: Mapping[InstanceRef, TaskState],
    *,
    task: str,
    item_index: int | None = None,
) -> list[InstanceRef]:
    """One task's retry (or one item's): it and every finished instance downstream."""
    start = {
        ref
        for ref, state in latest.items()
        if ref[0] == task and (item_index is None or ref[1] == item_index) and state.finished
    }
    return sorted(start | downstream_to_clear(graph, latest, task=task))


def downstream_to_clear(
    graph: RunGraph, latest: Mapping[InstanceRef, TaskState], *, task: str
) -> set[InstanceRef]:
    """The finished instances downstream of `task`: what a mark of it sends back."""
    below = downstream_tasks(graph, [task])
    return {ref for ref, state in latest.items() if ref[0] in below and state.finished}


def misfit(graph: RunGraph, refs: Iterable[InstanceRef]) -> str | None:
    """Why rows of these instances cannot be planned with `graph`, or None if they can."""
    for task, item_index in sorted(set(refs)):
        position = graph.index.get(task)
        if position is None:
            return f"it has no task {task!r}"
        size = graph.fan_out[position]
        if item_index >= size:
            return f"task {task!r} has {size} items, the run has item {item_index}"
    return None
