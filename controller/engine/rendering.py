"""Reading task results and rendering a try's command, args and env.

Results are parsed once, when a try succeeds, not when a downstream task renders: a
task that declares `result: {format: json}` and writes something else fails *its own*
try (with a message naming the parse error), instead of failing some downstream task
later with an error that points at the wrong place. `parse_result` is public so the
component that records a succeeded try can check it before writing; the planner checks
again and answers with a `RejectedResult` if a bad result got through.

Rendering substitutes values into argv elements and env values only; `valueFrom` env
entries are handed to Kubernetes untouched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from controller.engine.records import RunIdentity
from controller.spec.model import JSON, ResultFormat, Task
from controller.spec.templates import TemplateContext, render


class ResultError(ValueError):
    """A result that does not match the task's declared result format."""


@dataclass(frozen=True)
class RenderedTask:
    """What the pod of one try runs: argv and env with every template substituted."""

    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[Mapping[str, JSON], ...]


def parse_result(task: Task, raw: str | None) -> JSON:
    """The value downstream tasks see: text as-is, json parsed. Raises ResultError."""
    if task.result_format is ResultFormat.TEXT:
        return "" if raw is None else raw
    try:
        return json.loads("" if raw is None else raw)
    except json.JSONDecodeError as error:
        shown = "" if raw is None else raw[:80]
        raise ResultError(
            f"task {task.name!r} declares result format json, but its termination "
            f"message is not JSON ({error.msg} at line {error.lineno} column {error.colno}): "
            f"{shown!r}"
        ) from None


def run_fields(identity: RunIdentity) -> dict[str, str]:
    """The `run.*` values of a run's templates: text, as every template renders."""
    return {
        "id": str(identity.run_id),
        "dag": identity.dag_name,
        "logicalDate": identity.logical_date.isoformat(),
        "revision": identity.revision,
        "type": identity.run_type.value,
    }


def render_task(
    task: Task,
    *,
    identity: RunIdentity,
    item_index: int,
    task_results: Mapping[str, JSON],
    item: JSON = None,
) -> RenderedTask:
    """Render one instance of `task`. Raises TemplateError if a value is missing.

    `item` is the instance's item of a dynamic fan-out (a static one reads its own list).
    """
    context = TemplateContext(
        run=run_fields(identity),
        params=identity.params,
        task_results=task_results,
        item=task.with_items[item_index] if task.with_items is not None else item,
        has_item=task.fans_out,
    )
    env: list[Mapping[str, JSON]] = []
    for entry in task.env:
        value = entry.get("value")
        if isinstance(value, str):
            env.append({**entry, "value": render(value, context)})
        else:
            env.append(entry)
    return RenderedTask(
        command=tuple(render(part, context) for part in task.command),
        args=tuple(render(part, context) for part in task.args),
        env=tuple(env),
    )
