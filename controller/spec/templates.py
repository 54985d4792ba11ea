"""The template language of task commands, args and env values.

A closed language on purpose: `{{ run.FIELD }}`, `{{ params.NAME }}`,
`{{ tasks.NAME.result }}`, `{{ item }}` and `{{ item.KEY }}`, nothing else. No
expressions, filters or code, so a DAG file can never make the controller execute
anything, and every reference can be checked when the file is validated instead of
failing at three in the morning when the task renders.

Rendered values are substituted into argv elements and env values, never into a
shell line: a value that contains spaces or quotes stays one argument.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RUN_FIELDS = frozenset({"id", "dag", "logicalDate", "revision", "type"})
"""The fields of `run` a template may read."""

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_EXPR = re.compile(
    rf"^(?:run\.(?P<run>{_NAME})"
    rf"|params\.(?P<param>{_NAME})"
    rf"|tasks\.(?P<task>{_NAME})\.result"
    rf"|item(?:\.(?P<item_key>{_NAME}))?(?P<item>))$"
)


class TemplateError(ValueError):
    """A template that cannot be parsed or rendered; `offset` is where in the text."""

    def __init__(self, message: str, *, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class Reference:
    """One `{{ ... }}` tag: what it reads and where it starts in the text."""

    kind: str  # "run" | "params" | "tasks" | "item"
    name: str | None
    offset: int
    source: str


@dataclass(frozen=True)
class TemplateContext:
    """The values a template can see when a task instance is rendered."""

    run: Mapping[str, str]
    params: Mapping[str, Any] = field(default_factory=dict)
    task_results: Mapping[str, Any] = field(default_factory=dict)
    item: Any = None
    has_item: bool = False


_ITEMS_SOURCE = re.compile(rf"^\s*\{{\{{\s*tasks\.(?P<task>{_NAME})\.result\s*\}}\}}\s*$")


def items_source(text: str) -> str | None:
    """NAME when `text` is exactly `{{ tasks.NAME.result }}` (a dynamic withItems), else None."""
    match = _ITEMS_SOURCE.match(text)
    return None if match is None else match.group("task")


def references(text: str) -> list[Reference]:
    """Every tag in `text`, in order. Raises TemplateError on the first malformed one."""
    found: list[Reference] = []
    for match in _TAG.finditer(text):
        found.append(_parse_tag(match))
    unclosed = _unclosed_tag(text)
    if unclosed is not None:
        raise TemplateError("'{{' without a closing '}}'", offset=unclosed)
    return found


def _unclosed_tag(text: str) -> int | None:
    position = 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            return None
        end = text.find("}}", start + 2)
        if end < 0:
            return start
        position = end + 2


def _parse_tag(match: re.Match[str]) -> Reference:
    source = match.group(0)
    expr = match.group(1).strip()
    parsed = _EXPR.match(expr)
    if parsed is None:
        raise TemplateError(
            f"unknown template expression {source!r}: expected run.FIELD, params.NAME, "
            "tasks.NAME.result, item or item.KEY",
            offset=match.start(),
        )
    if parsed.group("run") is not None:
        name = parsed.group("run")
        if name not in RUN_FIELDS:
            raise TemplateError(
                f"unknown run field {name!r} in {source!r}: known are "
                + ", ".join(sorted(RUN_FIELDS)),
                offset=match.start(),
            )
        return Reference("run", name, match.start(), source)
    if parsed.group("param") is not None:
        return Reference("params", parsed.group("param"), match.start(), source)
    if parsed.group("task") is not None:
        return Reference("tasks", parsed.group("task"), match.start(), source)
    return Reference("item", parsed.group("item_key"), match.start(), source)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _value(ref: Reference, context: TemplateContext) -> Any:
    if ref.kind == "run":
        return context.run[ref.name or ""]
    if ref.kind == "params":
        if ref.name is None or ref.name not in context.params:
            raise TemplateError(f"{ref.source}: no such param", offset=ref.offset)
        return context.params[ref.name]
    if ref.kind == "tasks":
        if ref.name is None or ref.name not in context.task_results:
            raise TemplateError(f"{ref.source}: no result of that task", offset=ref.offset)
        return context.task_results[ref.name]
    if not context.has_item:
        raise TemplateError(f"{ref.source} outside withItems", offset=ref.offset)
    if ref.name is None:
        return context.item
    if not isinstance(context.item, Mapping) or ref.name not in context.item:
        raise TemplateError(f"{ref.source}: the item has no key {ref.name!r}", offset=ref.offset)
    return context.item[ref.name]


def render(text: str, context: TemplateContext) -> str:
    """`text` with every tag replaced by its value (non-strings as compact JSON)."""
    if "{{" not in text:
        return text
    references(text)  # raise on a malformed or unclosed tag before substituting

    def substitute(match: re.Match[str]) -> str:
        return _as_text(_value(_parse_tag(match), context))

    return _TAG.sub(substitute, text)
