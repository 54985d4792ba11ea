"""Dynamic fan-out: the items of `withItems: "{{ tasks.NAME.result }}"`, from NAME's result.

The validator guarantees NAME is a dependency that declares `result: {format: json}`;
what only the run can tell is whether the value is usable. A value that is not a JSON
array, or one longer than MAX_ITEMS, fails the fanning-out task with a message that
names the upstream and what it returned (an EXPANSION failure: retrying cannot change an
upstream result that is final, so it is never retried). An empty array skips the task.

Expanding is pure and deterministic over the stored upstream result, and the planner
expands a task only when it has no rows yet: once the rows of an expansion are written
(all in one transaction, before any of them is launched), a restarted engine reads the
expansion back from those rows and never expands again.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

from controller.base.states import FailureKind, TaskState
from controller.engine.records import TaskInstanceView
from controller.spec.model import JSON, Task

MAX_ITEMS = 1024
"""Most instances one dynamic fan-out may create."""


class ExpansionError(ValueError):
    """The upstream result cannot be fanned out over; the message is for the user."""


def expand(task: Task, value: JSON) -> tuple[JSON, ...]:
    """The items of `task`'s dynamic withItems, given its source task's result `value`."""
    source = f"tasks.{task.items_from}.result"
    if not isinstance(value, list):
        shown = json.dumps(value)[:80]
        raise ExpansionError(
            f"withItems of {task.name!r} needs {source} to be a JSON array, got {shown}"
        )
    if len(value) > MAX_ITEMS:
        raise ExpansionError(
            f"withItems of {task.name!r}: {source} has {len(value)} items, "
            f"more than the maximum of {MAX_ITEMS}"
        )
    return tuple(value)


def expanded_items(
    rows: Iterable[TaskInstanceView], dynamic: Collection[str]
) -> dict[str, tuple[JSON, ...]]:
    """The items of each dynamic fan-out in `dynamic` that was expanded, from its rows.

    Every row of an expansion was written in one transaction, so the item indexes of a
    task's rows run from 0 without a gap; a gap is a bug and raises KeyError.
    """
    found: dict[str, dict[int, JSON]] = {}
    for view in rows:
        if view.task in dynamic and not _never_expanded(view):
            found.setdefault(view.task, {})[view.item_index] = view.item
    return {
        task: tuple(items[index] for index in range(max(items) + 1))
        for task, items in found.items()
    }


def _never_expanded(view: TaskInstanceView) -> bool:
    """A row written without expanding: skipped or upstream-failed, or failed expanding,
    or an operator's clear of one of those.

    Instances of an expansion are created as pending first tries with their item, so
    they never look like this; a later skip or clear of one (after an operator's retry)
    carries its item.
    """
    if view.item_index != 0 or view.item is not None:
        return False
    return view.state in (TaskState.SKIPPED, TaskState.UPSTREAM_FAILED, TaskState.CLEARED) or (
        view.failure_kind is FailureKind.EXPANSION
    )
