"""The resolved DAG: what a valid DAG file means once its defaults are merged.

Everything after validation (planner, scheduler, pod builder, the run snapshot stored
in the database) works on these frozen dataclasses, never on raw YAML. A DagRun keeps
the resolved DAG it was created from as a plain JSON document (`dag_to_dict`), so a
later push cannot change a run in flight; `dag_from_dict` reads it back.

Kubernetes-shaped fields (env, envFrom, resources, podOverrides) stay plain mappings in
the API's own camelCase: they are handed to the API unchanged, and re-modelling them
here would only add a place for the two to drift apart.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JSON = Any
"""A value that survives a JSON round trip (str, int, float, bool, None, list, dict)."""


class TriggerRule(enum.StrEnum):
    """When a task may start, given the final states of its upstream task instances."""

    ALL_SUCCESS = "allSuccess"
    ALL_DONE = "allDone"
    ALL_FAILED = "allFailed"
    ONE_SUCCESS = "oneSuccess"
    ONE_FAILED = "oneFailed"
    NONE_FAILED = "noneFailed"


class ParamType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


class ResultFormat(enum.StrEnum):
    """How a task's termination message is read as its result."""

    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class RetryBackoff:
    """Delay before retry n (1-based) is min(delay * factor**(n-1), max_delay)."""

    delay_seconds: float = 10.0
    factor: float = 2.0
    max_delay_seconds: float = 600.0

    def delay_for(self, retry_number: int) -> float:
        raw = self.delay_seconds * self.factor ** max(retry_number - 1, 0)
        return float(min(raw, self.max_delay_seconds))


@dataclass(frozen=True)
class RetryPolicy:
    """`limit` retries after the first try, so at most limit + 1 tries in all."""

    limit: int = 0
    backoff: RetryBackoff = field(default_factory=RetryBackoff)


@dataclass(frozen=True)
class Param:
    name: str
    type: ParamType
    default: JSON = None
    required: bool = False
    enum: tuple[JSON, ...] | None = None
    description: str | None = None


@dataclass(frozen=True)
class Task:
    """One task of a DAG with the DAG's defaults already merged in."""

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str | None = None
    checkout: bool = True
    """False: the pod gets no checkout of the repository (no init container)."""
    env: tuple[Mapping[str, JSON], ...] = ()
    env_from: tuple[Mapping[str, JSON], ...] = ()
    resources: Mapping[str, JSON] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_seconds: int | None = None
    with_items: tuple[JSON, ...] | None = None
    pod_overrides: Mapping[str, JSON] = field(default_factory=dict)
    result_format: ResultFormat = ResultFormat.TEXT
    items_from: str | None = None
    """Dynamic fan-out: the task whose JSON array result gives the items at run time."""

    @property
    def fans_out(self) -> bool:
        """Whether the task has one instance per item (static or dynamic withItems)."""
        return self.with_items is not None or self.items_from is not None

    @property
    def fan_out(self) -> int:
        """How many task instances this task expands to (1 without withItems).

        A dynamic fan-out counts as 1 until the run expands it.
        """
        return 1 if self.with_items is None else len(self.with_items)


@dataclass(frozen=True)
class Dag:
    name: str
    tasks: tuple[Task, ...]
    description: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    schedule: str | None = None
    timezone: str = "UTC"
    start_date: datetime | None = None
    end_date: datetime | None = None
    catchup: bool = False
    max_active_runs: int = 1
    max_active_tasks: int = 16
    paused: bool = False
    params: tuple[Param, ...] = ()

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def task_to_dict(task: Task) -> dict[str, JSON]:
    data: dict[str, JSON] = {
        "name": task.name,
        "image": task.image,
        "command": list(task.command),
        "args": list(task.args),
        "workingDir": task.working_dir,
        "env": [dict(e) for e in task.env],
        "envFrom": [dict(e) for e in task.env_from],
        "resources": dict(task.resources),
        "dependsOn": list(task.depends_on),
        "triggerRule": task.trigger_rule.value,
        "retries": {
            "limit": task.retries.limit,
            "backoff": {
                "delaySeconds": task.retries.backoff.delay_seconds,
                "factor": task.retries.backoff.factor,
                "maxDelaySeconds": task.retries.backoff.max_delay_seconds,
            },
        },
        "timeoutSeconds": task.timeout_seconds,
        "withItems": None if task.with_items is None else list(task.with_items),
        "podOverrides": dict(task.pod_overrides),
        "resultFormat": task.result_format.value,
    }
    # Only when set, so the snapshots and content hashes of every DAG stored before
    # these fields existed stay what they were.
    if task.items_from is not None:
        data["itemsFrom"] = task.items_from
    if not task.checkout:
        data["checkout"] = False
    return data


def task_from_dict(data: Mapping[str, JSON]) -> Task:
    backoff = data["retries"]["backoff"]
    items = data.get("withItems")
    return Task(
        name=data["name"],
        image=data["image"],
        command=tuple(data.get("command", ())),
        args=tuple(data.get("args", ())),
        working_dir=data.get("workingDir"),
        checkout=data.get("checkout", True),
        env=tuple(data.get("env", ())),
        env_from=tuple(data.get("envFrom", ())),
        resources=data.get("resources", {}),
        depends_on=tuple(data.get("dependsOn", ())),
        trigger_rule=TriggerRule(data.get("triggerRule", TriggerRule.ALL_SUCCESS.value)),
        retries=RetryPolicy(
            limit=data["retries"]["limit"],
            backoff=RetryBackoff(
                delay_seconds=backoff["delaySeconds"],
                factor=backoff["factor"],
                max_delay_seconds=backoff["maxDelaySeconds"],
            ),
        ),
        timeout_seconds=data.get("timeoutSeconds"),
        with_items=None if items is None else tuple(items),
        pod_overrides=data.get("podOverrides", {}),
        result_format=ResultFormat(data.get("resultFormat", ResultFormat.TEXT.value)),
        items_from=data.get("itemsFrom"),
    )


def dag_to_dict(dag: Dag) -> dict[str, JSON]:
    """The resolved DAG as a JSON document: the snapshot a DagRun is pinned to."""
    return {
        "name": dag.name,
        "description": dag.description,
        "labels": dict(dag.labels),
        "schedule": dag.schedule,
        "timezone": dag.timezone,
        "startDate": _iso(dag.start_date),
        "endDate": _iso(dag.end_date),
        "catchup": dag.catchup,
        "maxActiveRuns": dag.max_active_runs,
        "maxActiveTasks": dag.max_active_tasks,
        "paused": dag.paused,
        "params": [
            {
                "name": p.name,
                "type": p.type.value,
                "default": p.default,
                "required": p.required,
                "enum": None if p.enum is None else list(p.enum),
                "description": p.description,
            }
            for p in dag.params
        ],
        "tasks": [task_to_dict(t) for t in dag.tasks],
    }


def dag_from_dict(data: Mapping[str, JSON]) -> Dag:
    return Dag(
        name=data["name"],
        description=data.get("description"),
        labels=data.get("labels", {}),
        schedule=data.get("schedule"),
        timezone=data.get("timezone", "UTC"),
        start_date=_from_iso(data.get("startDate")),
        end_date=_from_iso(data.get("endDate")),
        catchup=data.get("catchup", False),
        max_active_runs=data.get("maxActiveRuns", 1),
        max_active_tasks=data.get("maxActiveTasks", 16),
        paused=data.get("paused", False),
        params=tuple(
            Param(
                name=p["name"],
                type=ParamType(p["type"]),
                default=p.get("default"),
                required=p.get("required", False),
                enum=None if p.get("enum") is None else tuple(p["enum"]),
                description=p.get("description"),
            )
            for p in data.get("params", ())
        ),
        tasks=tuple(task_from_dict(t) for t in data["tasks"]),
    )
