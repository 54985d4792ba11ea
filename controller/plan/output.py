"""A plan as text (a terminal), JSON (a program) or markdown (a pull request comment).

All three print the same facts from one `plan_to_json` walk, so a field added to the
plan cannot appear in one form and be forgotten in another: text and markdown render
the JSON document, not the dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from controller.plan.compute import DagPlan, FieldChange, OpenRun, Plan, TaskChange
from controller.plan.schedules import CatchupRuns, ScheduleChange

SHOWN_RUNS = 10
"""Catchup logical dates listed in text and markdown (JSON lists them all)."""


def _time(moment: datetime) -> str:
    return moment.isoformat()


def _schedule(change: ScheduleChange) -> dict[str, Any]:
    return {
        "before": change.before,
        "after": change.after,
        "firesBefore": [_time(t) for t in change.fires_before],
        "firesAfter": [_time(t) for t in change.fires_after],
    }


def _catchup(runs: CatchupRuns) -> dict[str, Any]:
    return {
        "known": runs.known,
        "count": len(runs.logical_dates) if runs.known else None,
        "truncated": runs.truncated,
        "assumedLastRun": runs.assumed_last_run,
        "logicalDates": [_time(t) for t in runs.logical_dates],
    }


def _field(change: FieldChange) -> dict[str, Any]:
    return {"field": change.field, "before": change.before, "after": change.after}


def _task(change: TaskChange) -> dict[str, Any]:
    return {
        "name": change.name,
        "kind": change.kind.value,
        "settings": [_field(s) for s in change.settings],
        "podFields": list(change.pod_fields),
        "podDiff": change.pod_diff,
    }


def _run(run: OpenRun) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "revision": run.revision,
        "state": run.state,
        "logicalDate": _time(run.logical_date),
    }


def _paused(paused: tuple[bool, bool]) -> dict[str, bool]:
    return {"before": paused[0], "after": paused[1]}


def _dag(plan: DagPlan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "kind": plan.kind.value,
        "path": plan.path,
        "oldPath": plan.old_path,
        "schedule": None if plan.schedule is None else _schedule(plan.schedule),
        "paused": None if plan.paused is None else _paused(plan.paused),
        "catchup": None if plan.catchup is None else _catchup(plan.catchup),
        "fields": [_field(f) for f in plan.fields],
        "tasks": [_task(t) for t in plan.tasks],
        "problems": [p.to_json() for p in plan.problems],
        "openRuns": None if plan.open_runs is None else [_run(r) for r in plan.open_runs],
    }


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "base": plan.base,
        "head": plan.head,
        "now": _time(plan.now),
        "exitCode": plan.exit_code,
        "dags": [_dag(d) for d in plan.dags],
        "problems": [p.to_json() for p in plan.problems],
    }


def render_json(plan: Plan) -> str:
    return json.dumps(plan_to_json(plan), indent=2, sort_keys=True)


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _summary(plan: Mapping[str, Any]) -> str:
    counts: dict[str, int] = {}
    for dag in plan["dags"]:
        counts[dag["kind"]] = counts.get(dag["kind"], 0) + 1
    if not counts:
        return "No changes."
    return ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items())) + "."


def _details(dag: Mapping[str, Any], code: Callable[[str], str], *, diffs: bool) -> Iterator[str]:
    """The lines under one DAG's heading, shared by text and markdown."""
    if dag["oldPath"] and dag["path"] and dag["oldPath"] != dag["path"]:
        yield f"file moved: {code(dag['oldPath'])} -> {code(dag['path'])}"
    for problem in dag["problems"]:
        yield f"problem: {code(_problem(problem))}"
    if dag["kind"] == "invalid-now":
        yield (
            "the controller keeps running the last valid version"
            if dag["oldPath"]
            else "a new DAG the controller will not load until it is valid"
        )
    if dag["schedule"] is not None:
        schedule = dag["schedule"]
        yield f"schedule: {schedule['before'] or 'none'} -> {schedule['after'] or 'none'}"
        for label, key in (("fires before", "firesBefore"), ("fires after", "firesAfter")):
            if schedule[key]:
                yield f"{label}: " + ", ".join(schedule[key])
    if dag["paused"] is not None:
        paused = dag["paused"]
        yield f"paused: {_value(paused['before'])} -> {_value(paused['after'])}"
    if dag["catchup"] is not None:
        yield _catchup_line(dag["catchup"])
    for change in dag["fields"]:
        yield f"{change['field']}: {_value(change['before'])} -> {_value(change['after'])}"
    for task in dag["tasks"]:
        yield f"task {code(task['name'])}: {task['kind']}"
        for setting in task["settings"]:
            yield (
                f"  {setting['field']}: {_value(setting['before'])} -> {_value(setting['after'])}"
            )
        if task["podFields"]:
            yield "  pod: " + ", ".join(task["podFields"])
        if diffs and task["podDiff"]:
            yield from (f"    {line}" for line in task["podDiff"].splitlines())
    if dag["openRuns"] is not None and dag["kind"] != "added":
        runs = dag["openRuns"]
        if runs:
            listed = ", ".join(f"#{r['id']} ({r['state']}, {r['revision'][:12]})" for r in runs)
            yield f"open runs keeping their commit: {listed}"
        else:
            yield "open runs: none"


def _catchup_line(catchup: Mapping[str, Any]) -> str:
    if not catchup["known"]:
        return (
            "runs created at merge: unknown (paused in the base; pass the database to count "
            "the runs missed since its last run)"
        )
    dates = catchup["logicalDates"]
    count = f"at least {len(dates)}" if catchup["truncated"] else str(len(dates))
    shown = ", ".join(dates[:SHOWN_RUNS]) + (", ..." if len(dates) > SHOWN_RUNS else "")
    assumed = " (assuming the base version ran on schedule)" if catchup["assumedLastRun"] else ""
    return f"runs created at merge: {count}{assumed}, logical dates {shown}"


def _problem(problem: Mapping[str, Any]) -> str:
    where = f" ({problem['field']})" if problem["field"] else ""
    return f"{problem['path']}:{problem['line']}:{problem['col']}: {problem['message']}{where}"


def render_text(plan: Plan) -> str:
    data = plan_to_json(plan)
    lines = [f"kubedag plan {data['base']}..{data['head']} at {data['now']}"]
    for dag in data["dags"]:
        lines.append("")
        lines.append(f"{dag['kind']}: {dag['name']} ({dag['path'] or dag['oldPath']})")
        lines.extend(f"  {line}" for line in _details(dag, lambda text: text, diffs=True))
    plan_wide = [p for p in data["problems"] if not _owned(p, data["dags"])]
    if plan_wide:
        lines.append("")
        lines.extend(_problem(p) for p in plan_wide)
    lines.extend(["", _summary(data)])
    if data["exitCode"] == 1:
        lines.append(f"HEAD is invalid: {len(data['problems'])} problems.")
    if data["dags"] and any(
        dag["openRuns"] is None and dag["kind"] != "added" for dag in data["dags"]
    ):
        lines.append("Runs in flight keep the commit they were created from.")
    return "\n".join(lines) + "\n"


def _owned(problem: Mapping[str, Any], dags: list[Mapping[str, Any]]) -> bool:
    return any(problem in dag["problems"] for dag in dags)


def render_markdown(plan: Plan) -> str:
    data = plan_to_json(plan)
    lines = [f"### kubedag plan `{data['base']}`..`{data['head']}`", "", f"**{_summary(data)}**"]
    if data["exitCode"] == 1:
        lines.append("")
        lines.append(f":x: HEAD is invalid: {len(data['problems'])} problems.")
    for dag in data["dags"]:
        lines.append("")
        lines.append(f"#### {dag['kind']}: `{dag['name']}` (`{dag['path'] or dag['oldPath']}`)")
        lines.append("")
        lines.extend(
            f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"
            for line in _details(dag, lambda text: f"`{text}`", diffs=False)
        )
        diffs = [task for task in dag["tasks"] if task["podDiff"]]
        for task in diffs:
            lines.extend(
                [
                    "",
                    f"<details><summary>pod diff of <code>{task['name']}</code></summary>",
                    "",
                    "```diff",
                    task["podDiff"],
                    "```",
                    "</details>",
                ]
            )
    plan_wide = [p for p in data["problems"] if not _owned(p, data["dags"])]
    if plan_wide:
        lines.append("")
        lines.extend(f"- `{_problem(p)}`" for p in plan_wide)
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[Plan], str]] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
}
