"""Layering a worker pod: base template, then kubedag's pod, then the task's podOverrides.

Three parties shape a worker pod: the operator (a base pod template file, like Airflow's
pod_template_file), kubedag (the checkout, the task container, identity), and the DAG
author (podOverrides). Each layer is merged over the one before, so later layers win.

The trap is merging lists naively. Replacing `volumes` would drop the workspace volume
the checkout needs; merging two `env` entries field by field could leave an entry with
both `value` and `valueFrom`, which the API rejects. So lists of named objects merge by
name (a later entry replaces an earlier one of the same name, except containers, whose
fields merge so a template's `task` container can add mounts and env), lists of
unnamed objects (tolerations) are concatenated without duplicates, and scalar lists
(command, args) are replaced.

Pure, except `load_pod_template`, which reads the operator's template file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_FIELD_MERGED_LISTS = frozenset({"containers", "initContainers"})
_METADATA_OVERRIDES = frozenset({"labels", "annotations"})
_CONTAINER_OVERRIDES = frozenset({"volumeMounts"})
_KUBEDAG_OWNED = frozenset({"containers", "initContainers", "restartPolicy"})
"""Replacing these would bypass the pinned checkout or restart a finished task."""


def load_pod_template(path: str | Path) -> dict[str, Any]:
    """The base pod template from a YAML file: a Pod manifest (apiVersion and kind optional)."""
    with open(path, encoding="utf-8") as stream:
        loaded = yaml.safe_load(stream)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a pod template must be a mapping, got {type(loaded).__name__}")
    kind = loaded.get("kind", "Pod")
    if kind != "Pod":
        raise ValueError(f"{path}: a pod template must be kind Pod, got {kind!r}")
    return loaded


def merge(base: Any, over: Any, *, key: str | None = None) -> Any:
    """`over` layered on `base` (neither is modified); see the module docstring for lists."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        merged = {k: _fresh(v) for k, v in base.items()}
        for k, v in over.items():
            merged[k] = merge(merged[k], v, key=k) if k in merged else _fresh(v)
        return merged
    if isinstance(base, list) and isinstance(over, list):
        if _all_named(base) and _all_named(over) and (base or over):
            return _merge_named(base, over, by_field=key in _FIELD_MERGED_LISTS)
        if all(isinstance(item, Mapping) for item in [*base, *over]):
            return [_fresh(item) for item in _unique([*base, *over])]
    return _fresh(over)


def _fresh(value: Any) -> Any:
    """A copy of JSON-shaped ``value`` that shares no dict or list with it.

    What copy.deepcopy would give for pod fields, several times faster: it is on every
    launch's path, and pod fields hold nothing but dicts, lists and immutable scalars.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fresh(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _fresh(v) for k, v in value.items()}
    return value


def _all_named(items: list[Any]) -> bool:
    return all(isinstance(item, Mapping) and "name" in item for item in items)


def _merge_named(base: list[Any], over: list[Any], *, by_field: bool) -> list[Any]:
    merged: dict[str, Any] = {item["name"]: _fresh(item) for item in base}
    for item in over:
        name = item["name"]
        if by_field and name in merged:
            merged[name] = merge(merged[name], item)
        else:
            merged[name] = _fresh(item)
    return list(merged.values())


def _unique(items: list[Any]) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        if item not in kept:
            kept.append(item)
    return kept


def overrides_layer(overrides: Mapping[str, Any], *, container_name: str) -> dict[str, Any]:
    """A task's podOverrides reshaped as a partial Pod.

    podOverrides is flat for its authors (`nodeSelector`, `serviceAccountName`,
    `labels`, `volumeMounts`, ...): labels and annotations belong to the metadata,
    volumeMounts to the task's container, everything else to the pod spec.
    """
    reserved = sorted(_KUBEDAG_OWNED & overrides.keys())
    if reserved:
        raise ValueError(f"podOverrides may not set {', '.join(reserved)}: kubedag owns them")
    metadata = {k: v for k, v in overrides.items() if k in _METADATA_OVERRIDES}
    container = {k: v for k, v in overrides.items() if k in _CONTAINER_OVERRIDES}
    spec: dict[str, Any] = {
        k: v
        for k, v in overrides.items()
        if k not in _METADATA_OVERRIDES and k not in _CONTAINER_OVERRIDES
    }
    if container:
        spec["containers"] = [{"name": container_name, **container}]
    layer: dict[str, Any] = {}
    if metadata:
        layer["metadata"] = metadata
    if spec:
        layer["spec"] = spec
    return layer
