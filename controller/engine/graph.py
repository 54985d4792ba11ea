"""The index of a DAG that planning walks: adjacency, fan-out, order, template reads.

Built once per DAG version and shared by all its runs, because recomputing upstream and
downstream lists (or parsing templates) on every event is what turns planning a big run
quadratic. Tasks are numbered in topological order, so one forward sweep over the
numbers visits every task after all of its upstreams. `GraphCache` keys the index by
(dag name, spec hash): a run pinned to an older revision gets the index of the DAG it
was created from, never the current one.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from controller.spec.model import Dag, Task
from controller.spec.templates import references


@dataclass(frozen=True)
class RunGraph:
    """A DAG's tasks in topological order, with adjacency by position."""

    dag: Dag
    tasks: tuple[Task, ...]
    index: dict[str, int]
    upstream: tuple[tuple[int, ...], ...]
    downstream: tuple[tuple[int, ...], ...]
    fan_out: tuple[int, ...]
    reads: tuple[tuple[int, ...], ...]
    """For each task, the tasks whose result its templates read."""
    instance_count: int
    """With each dynamic fan-out counted as one instance, until a run expands it."""
    items_from: tuple[int | None, ...] = ()
    """For a dynamic fan-out, the task whose result gives its items; else None."""


def _template_texts(task: Task) -> Iterable[str]:
    yield from task.command
    yield from task.args
    for entry in task.env:
        value = entry.get("value")
        if isinstance(value, str):
            yield value


def _topological(dag: Dag) -> list[Task]:
    by_name = {task.name: task for task in dag.tasks}
    waiting = {task.name: len(set(task.depends_on)) for task in dag.tasks}
    children: dict[str, list[str]] = {task.name: [] for task in dag.tasks}
    for task in dag.tasks:
        for parent in set(task.depends_on):
            children[parent].append(task.name)
    ready = deque(task.name for task in dag.tasks if waiting[task.name] == 0)
    order: list[Task] = []
    while ready:
        name = ready.popleft()
        order.append(by_name[name])
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) != len(dag.tasks):
        raise ValueError(f"DAG {dag.name!r} has a dependency cycle; it should not have validated")
    return order


def build_graph(dag: Dag) -> RunGraph:
    """Index a validated DAG: O(tasks + edges + template text)."""
    order = _topological(dag)
    index = {task.name: position for position, task in enumerate(order)}
    upstream = tuple(tuple(sorted({index[name] for name in task.depends_on})) for task in order)
    children: list[list[int]] = [[] for _ in order]
    for position, parents in enumerate(upstream):
        for parent in parents:
            children[parent].append(position)
    for task in order:
        if task.fan_out < 1:
            raise ValueError(f"task {task.name!r}: withItems must not be empty")
    reads = tuple(
        tuple(
            sorted(
                {
                    index[ref.name]
                    for text in _template_texts(task)
                    for ref in references(text)
                    if ref.kind == "tasks" and ref.name in index
                }
            )
        )
        for task in order
    )
    return RunGraph(
        dag=dag,
        tasks=tuple(order),
        index=index,
        upstream=upstream,
        downstream=tuple(tuple(c) for c in children),
        fan_out=tuple(task.fan_out for task in order),
        reads=reads,
        instance_count=sum(task.fan_out for task in order),
        items_from=tuple(
            None if task.items_from is None else index[task.items_from] for task in order
        ),
    )


class GraphCache:
    """A bounded LRU of RunGraphs keyed by (dag name, spec hash)."""

    def __init__(self, max_entries: int = 256) -> None:
        self._max_entries = max_entries
        self._graphs: OrderedDict[tuple[str, str], RunGraph] = OrderedDict()

    def get(self, dag: Dag, *, spec_hash: str) -> RunGraph:
        key = (dag.name, spec_hash)
        graph = self._graphs.get(key)
        if graph is None:
            graph = build_graph(dag)
            self._graphs[key] = graph
            if len(self._graphs) > self._max_entries:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        return graph
