"""The rules of a DAG file that a JSON Schema cannot express.

Unique task names, existing dependencies, no cycles, template references that
resolve, cron and time zone, dates in order, durations and quantities, Kubernetes
label rules, volumes that exist. All of them run even when the schema already found
problems, so a user sees every mistake in one pass: each rule reads the raw value
defensively and simply skips parts whose shape is wrong (the schema reported those).
"""

from __future__ import annotations

from datetime import UTC
from functools import lru_cache
from zoneinfo import ZoneInfo

from controller.base.durations import DurationError, parse_duration
from controller.spec.loader import Document, Path
from controller.spec.merge import merge_field
from controller.spec.model import JSON, ParamType
from controller.spec.params import matches_type
from controller.spec.podfields import check_env, check_env_from, check_labels, check_pod_overrides
from controller.spec.problems import Problem
from controller.spec.quantities import QuantityError, parse_quantity
from controller.spec.report import Reporter, as_dict, as_list
from controller.spec.schedule import ScheduleError, crontab_trigger, load_timezone, parse_instant
from controller.spec.tasks import check_tasks


def semantic_problems(document: Document, *, path: str) -> list[Problem]:
    """Every semantic problem of one DAG file (cross-file rules live in validate.py)."""
    report = Reporter(document, path)
    spec = as_dict(as_dict(document.value).get("spec"))
    zone = _check_schedule(report, spec)
    _check_dates(report, spec, zone)
    _check_params(report, spec)
    check_labels(report, ("metadata", "labels"), as_dict(document.value).get("metadata"))
    defaults = as_dict(spec.get("defaults"))
    _check_task_fields(report, ("spec", "defaults"), defaults)
    for index, task in enumerate(as_list(spec.get("tasks"))):
        if isinstance(task, dict):
            _check_task_fields(report, ("spec", "tasks", index), task)
            _check_effective(report, ("spec", "tasks", index), task, defaults)
    check_tasks(report, spec)
    return report.problems


def _check_schedule(report: Reporter, spec: dict[str, JSON]) -> ZoneInfo | None:
    zone: ZoneInfo | None = ZoneInfo("UTC")
    timezone = spec.get("timezone", "UTC")
    if isinstance(timezone, str):
        try:
            zone = load_timezone(timezone)
        except ScheduleError as error:
            report.at(("spec", "timezone"), str(error))
            zone = None
    schedule = spec.get("schedule")
    if isinstance(schedule, str) and (problem := _schedule_problem(schedule)) is not None:
        report.at(("spec", "schedule"), problem)
    return zone


@lru_cache(maxsize=1024)
def _schedule_problem(schedule: str) -> str | None:
    """Why `schedule` is not a valid cron schedule, or None.

    Memoized: building the trigger is the slowest semantic check, and a repository's
    DAGs share a handful of schedules. The time zone plays no part in which schedules
    are valid.
    """
    try:
        crontab_trigger(schedule, timezone=UTC)
    except ScheduleError as error:
        return str(error)
    return None


def _check_dates(report: Reporter, spec: dict[str, JSON], zone: ZoneInfo | None) -> None:
    if zone is None:
        return
    instants = {}
    for name in ("startDate", "endDate"):
        value = spec.get(name)
        if isinstance(value, str):
            try:
                instants[name] = parse_instant(value, zone)
            except ScheduleError as error:
                report.at(("spec", name), str(error))
    if len(instants) == 2 and instants["startDate"] >= instants["endDate"]:
        report.at(
            ("spec", "endDate"),
            f"endDate {spec['endDate']} is not after startDate {spec['startDate']}",
        )


def _check_params(report: Reporter, spec: dict[str, JSON]) -> None:
    scheduled = isinstance(spec.get("schedule"), str)
    for name, param in as_dict(spec.get("params")).items():
        where: Path = ("spec", "params", name)
        param = as_dict(param)
        try:
            kind = ParamType(str(param.get("type")))
        except ValueError:
            continue
        enum = param.get("enum")
        for index, option in enumerate(as_list(enum)):
            if not matches_type(option, kind):
                report.at(
                    (*where, "enum", index), f"enum value {option!r} is not of type {kind.value}"
                )
        if "default" in param and param["default"] is not None:
            default = param["default"]
            if not matches_type(default, kind):
                report.at((*where, "default"), f"default {default!r} is not of type {kind.value}")
            elif isinstance(enum, list) and default not in enum:
                report.at((*where, "default"), f"default {default!r} is not one of its enum")
        elif param.get("required") is True and scheduled:
            report.at(
                (*where, "required"),
                f"param {name!r} is required without a default, but scheduled runs have no "
                "one to give it: add a default or remove the schedule",
            )


def _check_task_fields(report: Reporter, where: Path, task: dict[str, JSON]) -> None:
    """Rules on what one task (or the defaults) writes itself."""
    if _is_zero_duration(task.get("timeout")):
        report.at((*where, "timeout"), "timeout must be longer than 0s (omit it for none)")
    overrides = task.get("podOverrides")
    if isinstance(overrides, dict) and overrides:
        check_pod_overrides(report, (*where, "podOverrides"), overrides)
    resources = task.get("resources")
    if isinstance(resources, dict):
        for kind in ("requests", "limits"):
            for name, quantity in as_dict(resources.get(kind)).items():
                try:
                    parse_quantity(quantity)
                except QuantityError as error:
                    report.at((*where, "resources", kind, name), str(error))
    env = as_list(task.get("env"))
    seen: set[str] = set()
    for index, variable in enumerate(env):
        variable_name = as_dict(variable).get("name")
        if isinstance(variable_name, str) and variable_name in seen:
            message = f"env variable {variable_name!r} is set twice"
            report.at((*where, "env", index, "name"), message)
        if isinstance(variable_name, str):
            seen.add(variable_name)
    check_env(report, (*where, "env"), env)
    check_env_from(report, (*where, "envFrom"), as_list(task.get("envFrom")))


def _quantities(task: dict[str, JSON], kind: str) -> dict[str, JSON]:
    return as_dict(as_dict(task.get("resources")).get(kind))


def _check_effective(
    report: Reporter, where: Path, task: dict[str, JSON], defaults: dict[str, JSON]
) -> None:
    """Rules on a task with its defaults merged in, reported where the value was written."""
    if "image" not in task and "image" not in defaults:
        report.at(where, "task has no image: set image on the task or in spec.defaults")
    working = _effective(defaults, task, "workingDir")
    no_checkout = _effective(defaults, task, "checkout") is False
    if no_checkout and isinstance(working, str) and not working.startswith("/"):
        source = where if "workingDir" in task else ("spec", "defaults")
        report.at(
            (*source, "workingDir"),
            f"workingDir {working!r} is relative to the checkout, but the task has "
            "checkout: false; give an absolute path in the image, or drop it",
        )
    resources = as_dict(_effective(defaults, task, "resources"))
    limits = as_dict(resources.get("limits"))
    own = _quantities(task, "requests")
    for name, request in as_dict(resources.get("requests")).items():
        if name not in limits:
            continue
        try:
            too_big = parse_quantity(request) > parse_quantity(limits[name])
        except QuantityError:
            continue
        if too_big:
            source = where if name in own else ("spec", "defaults")
            report.at(
                (*source, "resources", "requests", name),
                f"{name} request {request} is larger than its limit {limits[name]}",
            )
    volumes = {
        as_dict(volume).get("name")
        for volume in as_list(as_dict(_effective(defaults, task, "podOverrides")).get("volumes"))
    }
    for source, fields in ((("spec", "defaults"), defaults), (where, task)):
        mounts = as_list(as_dict(fields.get("podOverrides")).get("volumeMounts"))
        for index, mount in enumerate(mounts):
            volume = as_dict(mount).get("name")
            if isinstance(volume, str) and volume not in volumes:
                report.at(
                    (*source, "podOverrides", "volumeMounts", index, "name"),
                    f"volumeMount names volume {volume!r}, which podOverrides.volumes "
                    "does not declare",
                )


def _effective(defaults: dict[str, JSON], task: dict[str, JSON], field: str) -> JSON:
    """What merge_task(defaults, task) holds for `field`, without merging the other fields."""
    if field not in task:
        return defaults.get(field)
    if field not in defaults:
        return task[field]
    return merge_field(field, defaults[field], task[field])


def _is_zero_duration(value: JSON) -> bool:
    """A duration of zero; one that does not parse is the schema's to report."""
    if value is None:
        return False
    try:
        return parse_duration(value) == 0
    except DurationError:
        return False
