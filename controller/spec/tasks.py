"""The rules that tie tasks together: names, dependencies, cycles and template references.

A cycle is reported once, named in the order tasks would run (`a -> b -> c -> a`,
"b runs after a"), at the dependsOn entry that closes it, so the user sees which
edge to cut. A template may read `{{ tasks.X.result }}` only when X is upstream of
the reading task (directly or transitively): otherwise the result might not exist
yet when the task's pod is created, and it would fail at run time, not here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

from controller.spec.loader import Path
from controller.spec.model import JSON
from controller.spec.report import Reporter, as_dict, as_list
from controller.spec.templates import Reference, TemplateError, items_source, references


def check_tasks(report: Reporter, spec: dict[str, JSON]) -> None:
    tasks = _named_tasks(report, spec)
    dependencies = _dependencies(report, tasks)
    _check_cycles(report, tasks, dependencies)
    params = set(as_dict(spec.get("params")))
    defaults = as_dict(spec.get("defaults"))
    upstream = _upstream_sets(dependencies)
    for name, (index, task) in tasks.items():
        items = task.get("withItems")
        if isinstance(items, str):
            _check_items_source(
                report, text=items, index=index, name=name, tasks=tasks, defaults=defaults
            )
        elif isinstance(items, list):
            _check_literal_items(report, items=items, index=index)
        context = _ReferenceContext(
            name=name,
            items=items if isinstance(items, list) else None,
            upstream=upstream[name],
            params=params,
            tasks=tasks,
            dynamic=isinstance(items, str),
        )
        for text, where in _template_texts(defaults, task, index):
            _check_references(report, text=text, where=where, context=context)


def _check_literal_items(report: Reporter, *, items: list[JSON], index: int) -> None:
    """Items of a list are data: a template tag in one would stay literal text, silently."""
    for position, item in enumerate(items):
        if _has_tag(item):
            report.at(
                ("spec", "tasks", index, "withItems", position),
                "withItems entries are not rendered, so a {{ ... }} tag here would stay text; "
                'to fan out over a task\'s result, write withItems: "{{ tasks.NAME.result }}"',
            )


def _has_tag(value: JSON) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_has_tag(v) for v in value.values())
    return isinstance(value, list) and any(_has_tag(v) for v in value)


def _check_items_source(
    report: Reporter,
    *,
    text: str,
    index: int,
    name: str,
    tasks: Mapping[str, tuple[int, dict[str, JSON]]],
    defaults: dict[str, JSON],
) -> None:
    """A dynamic withItems reads a JSON array its task is sure to have when it starts."""
    where: Path = ("spec", "tasks", index, "withItems")
    source = items_source(text)
    if source is None:
        report.at(
            where,
            'withItems must be a list of items or exactly "{{ tasks.NAME.result }}" '
            "(one instance per element of that task's JSON array result)",
        )
        return
    if source == name:
        report.at(where, f"task {name!r} cannot fan out over its own result")
        return
    if source not in tasks:
        report.at(where, f"withItems reads the result of {source!r}, which is not a task")
        return
    if source not in as_list(tasks[name][1].get("dependsOn")):
        report.at(
            where,
            f"withItems reads the result of {source!r}, which is not in dependsOn: "
            f"add {source!r} to dependsOn",
        )
    declared = as_dict(tasks[source][1].get("result")) or as_dict(defaults.get("result"))
    if declared.get("format") != "json":
        report.at(
            where,
            f"withItems reads the result of {source!r}, which must declare "
            "result: {format: json} (its result must be a JSON array)",
        )


def _named_tasks(report: Reporter, spec: dict[str, JSON]) -> dict[str, tuple[int, dict[str, JSON]]]:
    """Tasks by name (first occurrence), reporting repeated names."""
    tasks: dict[str, tuple[int, dict[str, JSON]]] = {}
    for index, task in enumerate(as_list(spec.get("tasks"))):
        name = as_dict(task).get("name")
        if not isinstance(name, str):
            continue
        if name in tasks:
            first = report.document.at(("spec", "tasks", tasks[name][0], "name"))
            report.at(
                ("spec", "tasks", index, "name"),
                f"duplicate task name {name!r} (first at line {first.line}, column {first.col})",
            )
            continue
        tasks[name] = (index, as_dict(task))
    return tasks


def _dependencies(
    report: Reporter, tasks: Mapping[str, tuple[int, dict[str, JSON]]]
) -> dict[str, list[tuple[str, int]]]:
    """Existing dependencies of each task, with their index in its dependsOn."""
    found: dict[str, list[tuple[str, int]]] = {}
    for name, (index, task) in tasks.items():
        found[name] = []
        for position, target in enumerate(as_list(task.get("dependsOn"))):
            if not isinstance(target, str):
                continue
            where: Path = ("spec", "tasks", index, "dependsOn", position)
            if target == name:
                report.at(where, f"task {name!r} depends on itself")
            elif target not in tasks:
                known = ", ".join(sorted(tasks))
                report.at(where, f"dependsOn names {target!r}, which is not a task ({known})")
            else:
                found[name].append((target, position))
    return found


def _check_cycles(
    report: Reporter,
    tasks: Mapping[str, tuple[int, dict[str, JSON]]],
    dependencies: Mapping[str, list[tuple[str, int]]],
) -> None:
    reported: set[frozenset[str]] = set()
    for cycle in _cycles(list(tasks), dependencies):
        if frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        # In run order each task runs after the one before it; start from the task
        # written first in the file so the message does not depend on search order.
        order = list(reversed(cycle))
        start = min(range(len(order)), key=lambda i: tasks[order[i]][0])
        order = order[start:] + order[:start]
        first, previous = order[0], order[-1]
        position = next(p for target, p in dependencies[first] if target == previous)
        report.at(
            ("spec", "tasks", tasks[first][0], "dependsOn", position),
            "dependency cycle: " + " -> ".join([*order, first]),
        )


def _cycles(
    names: list[str], dependencies: Mapping[str, list[tuple[str, int]]]
) -> Iterator[list[str]]:
    """Cycles along dependsOn edges, each as [a, b, c] meaning a needs b needs c needs a."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in names:
        if root in state:
            continue
        path: list[str] = [root]
        pending = [iter(dependencies[root])]
        state[root] = 1
        while pending:
            step = next(pending[-1], None)
            if step is None:
                state[path.pop()] = 2
                pending.pop()
                continue
            target = step[0]
            if state.get(target) == 1:
                yield path[path.index(target) :]
            elif target not in state:
                state[target] = 1
                path.append(target)
                pending.append(iter(dependencies[target]))


def _upstream_sets(dependencies: Mapping[str, list[tuple[str, int]]]) -> dict[str, set[str]]:
    """Every task's direct and transitive upstream tasks (cycles included, harmlessly)."""
    found: dict[str, set[str]] = {}
    for name in dependencies:
        if name in found:
            continue
        seen: set[str] = set()
        stack = [target for target, _ in dependencies[name]]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in found:
                seen |= found[current]
            else:
                stack.extend(target for target, _ in dependencies[current])
        found[name] = seen
    return found


def _template_texts(
    defaults: dict[str, JSON], task: dict[str, JSON], index: int
) -> Iterator[tuple[str, Path]]:
    """Every string with a template tag the task will render, at the path where it is written."""
    own: Path = ("spec", "tasks", index)
    for field in ("command", "args"):
        fields, source = (task, own) if field in task else (defaults, ("spec", "defaults"))
        for position, text in enumerate(as_list(fields.get(field))):
            if isinstance(text, str) and "{{" in text:
                yield text, (*source, field, position)
    overridden = {as_dict(v).get("name") for v in as_list(task.get("env"))}
    for source, fields in ((("spec", "defaults"), defaults), (own, task)):
        for position, variable in enumerate(as_list(fields.get("env"))):
            variable = as_dict(variable)
            if fields is defaults and variable.get("name") in overridden:
                continue
            value = variable.get("value")
            if isinstance(value, str) and "{{" in value:
                yield value, (*source, "env", position, "value")


@dataclass(frozen=True)
class _ReferenceContext:
    """What the templates of one task may refer to."""

    name: str
    items: list[JSON] | None
    upstream: set[str]
    params: set[str]
    tasks: Mapping[str, tuple[int, dict[str, JSON]]]
    dynamic: bool = False
    """withItems comes from an upstream result: items are known only at run time."""


@lru_cache(maxsize=8192)
def _parsed(text: str) -> tuple[Reference, ...] | TemplateError:
    """The references in `text`, or why it does not parse.

    Memoized: the same templated strings recur in task after task and file after file.
    """
    try:
        return tuple(references(text))
    except TemplateError as error:
        return error


def _check_references(
    report: Reporter, *, text: str, where: Path, context: _ReferenceContext
) -> None:
    found = _parsed(text)
    if isinstance(found, TemplateError):
        report.at(where, str(found), offset=found.offset)
        return
    for ref in found:
        message = _reference_problem(ref.kind, ref.name, ref.source, context)
        if message is not None:
            report.at(where, message, offset=ref.offset)


def _reference_problem(
    kind: str, name: str | None, source: str, context: _ReferenceContext
) -> str | None:
    if kind == "params" and name not in context.params:
        declared = ", ".join(sorted(context.params)) or "none"
        return f"{source}: no param {name!r} is declared in spec.params (declared: {declared})"
    if kind == "tasks":
        if name == context.name:
            return f"{source}: task {name!r} cannot read its own result"
        if name not in context.tasks:
            return f"{source}: there is no task {name!r}"
        if name not in context.upstream:
            return (
                f"{source}: task {name!r} is not upstream of {context.name!r}, so its result "
                f"may not exist yet; add {name!r} to dependsOn"
            )
    if kind == "item" and not context.dynamic:
        if context.items is None:
            return f"{source}: item is only defined in a task with withItems"
        if name is not None and not all(
            isinstance(item, dict) and name in item for item in context.items
        ):
            return f"{source}: not every withItems entry is a mapping with key {name!r}"
    return None
