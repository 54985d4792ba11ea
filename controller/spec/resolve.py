"""From a validated DAG document to the resolved model: defaults merged, units parsed.

Runs only on documents without problems, so it may trust shapes the schema and the
semantic rules guaranteed; what it must not do is invent its own defaults, which are
taken from the model's dataclasses so that a resolved DAG and a snapshot read back
with `dag_from_dict` agree.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from typing import Any

from controller.base.durations import parse_duration
from controller.spec.merge import merge_task
from controller.spec.model import (
    JSON,
    Dag,
    Param,
    ParamType,
    ResultFormat,
    RetryBackoff,
    RetryPolicy,
    Task,
    TriggerRule,
    dag_to_dict,
)
from controller.spec.schedule import load_timezone, parse_instant
from controller.spec.templates import items_source

_BACKOFF = RetryBackoff()
_TRIGGER_RULES = {rule.value: rule for rule in TriggerRule}
_RESULT_FORMATS = {result.value: result for result in ResultFormat}


@lru_cache(maxsize=256)
def _retry_policy(limit: int, delay: JSON, factor: JSON, max_delay: JSON) -> RetryPolicy:
    """Memoized (policies are immutable): the tasks of a DAG mostly share their defaults'."""
    return RetryPolicy(
        limit=limit,
        backoff=RetryBackoff(
            delay_seconds=_BACKOFF.delay_seconds if delay is None else parse_duration(delay),
            factor=_BACKOFF.factor if factor is None else float(factor),
            max_delay_seconds=(
                _BACKOFF.max_delay_seconds if max_delay is None else parse_duration(max_delay)
            ),
        ),
    )


def resolve_task(defaults: dict[str, Any], raw: dict[str, Any]) -> Task:
    task = merge_task(defaults, raw)
    retries = task.get("retries", {})
    backoff = retries.get("backoff", {})
    items = task.get("withItems")
    return Task(
        name=task["name"],
        image=task["image"],
        command=tuple(task.get("command", ())),
        args=tuple(task.get("args", ())),
        working_dir=task.get("workingDir"),
        checkout=task.get("checkout", True),
        env=tuple(task.get("env", ())),
        env_from=tuple(task.get("envFrom", ())),
        resources=task.get("resources", {}),
        depends_on=tuple(task.get("dependsOn", ())),
        trigger_rule=_TRIGGER_RULES[task.get("triggerRule", TriggerRule.ALL_SUCCESS.value)],
        retries=_retry_policy(
            retries.get("limit", 0),
            backoff.get("delay"),
            backoff.get("factor"),
            backoff.get("maxDelay"),
        ),
        # activeDeadlineSeconds is whole seconds: a fraction is rounded up, never down.
        timeout_seconds=math.ceil(parse_duration(task["timeout"])) if "timeout" in task else None,
        with_items=tuple(items) if isinstance(items, list) else None,
        items_from=None if items is None or isinstance(items, list) else items_source(items),
        pod_overrides=task.get("podOverrides", {}),
        result_format=_RESULT_FORMATS[task.get("result", {}).get("format", "text")],
    )


def resolve_dag(document: dict[str, Any]) -> Dag:
    metadata = document["metadata"]
    spec = document["spec"]
    timezone = spec.get("timezone", "UTC")
    zone = load_timezone(timezone)
    start, end = spec.get("startDate"), spec.get("endDate")
    defaults = spec.get("defaults", {})
    return Dag(
        name=metadata["name"],
        description=metadata.get("description"),
        labels=metadata.get("labels", {}),
        schedule=spec.get("schedule"),
        timezone=timezone,
        start_date=None if start is None else parse_instant(start, zone),
        end_date=None if end is None else parse_instant(end, zone),
        catchup=spec.get("catchup", False),
        max_active_runs=spec.get("maxActiveRuns", 1),
        max_active_tasks=spec.get("maxActiveTasks", 16),
        paused=spec.get("paused", False),
        params=tuple(
            Param(
                name=name,
                type=ParamType(param["type"]),
                default=param.get("default"),
                required=param.get("required", False),
                enum=None if param.get("enum") is None else tuple(param["enum"]),
                description=param.get("description"),
            )
            for name, param in spec.get("params", {}).items()
        ),
        tasks=tuple(resolve_task(defaults, task) for task in spec["tasks"]),
    )


# dag_to_dict builds a tree without cycles, so the encoder need not look for them.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)


def content_hash(dag: Dag) -> str:
    """sha256 of the resolved DAG's canonical JSON: equal exactly when the meaning is equal."""
    canonical = _CANONICAL.encode(dag_to_dict(dag))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
