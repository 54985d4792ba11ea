"""The worker pod each task of a DAG would get, and the difference between two of them.

A reviewer needs to see where a change in `defaults` or in the operator's pod template
lands, and the only honest answer is the pod the executor would build: `build_pod`
itself, fed a fixed placeholder identity (run 0, try 1, item 0, one revision string for
both sides), so that two versions differ only where the DAG or the template differ.
Templates stay as written (`{{ run.logicalDate }}`): their values exist only in a run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from controller.base.tries import TryKey
from controller.executor.podspec import PodConfig, PodIdentity, RenderedCommand, build_pod
from controller.spec.model import Dag, Task

PLACEHOLDER_REVISION = "0" * 40
"""The revision written into both sides' pods; the real commit differs on every merge."""
PLACEHOLDER_CONTROLLER = "kubedag"


def task_pod(dag: Dag, task: Task, *, dag_path: str, config: PodConfig) -> dict[str, Any]:
    """The pod of the first try of `task`'s first instance, templates unrendered."""
    identity = PodIdentity(
        dag=dag.name,
        key=TryKey(run_id=0, task=task.name, item_index=0, try_number=1),
        revision=PLACEHOLDER_REVISION,
        controller=PLACEHOLDER_CONTROLLER,
        dag_file=dag_path,
    )
    rendered = RenderedCommand(command=task.command, args=task.args, env=task.env)
    return build_pod(task=task, identity=identity, rendered=rendered, config=config)


def pod_text(pod: Mapping[str, Any]) -> list[str]:
    """The pod as sorted YAML lines, the form a diff is read in."""
    text: str = yaml.safe_dump(dict(pod), sort_keys=True, default_flow_style=False)
    return text.splitlines()


def unified_diff(before: Mapping[str, Any], after: Mapping[str, Any], *, label: str) -> str:
    """A unified diff of two pods ("" when they are equal)."""
    lines = difflib.unified_diff(
        pod_text(before), pod_text(after), fromfile=f"a/{label}", tofile=f"b/{label}", lineterm=""
    )
    return "\n".join(lines)


def changed_fields(before: Any, after: Any, *, prefix: str = "") -> Iterator[str]:
    """The dotted paths where two JSON-like values differ (list positions as [n])."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after)):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in before or key not in after:
                yield where
            else:
                yield from changed_fields(before[key], after[key], prefix=where)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for position, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from changed_fields(old, new, prefix=f"{prefix}[{position}]")
    elif before != after:
        yield prefix or "."
