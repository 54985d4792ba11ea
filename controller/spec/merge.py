"""How `spec.defaults` merges into a task: one rule set, written down once.

Replacing whole fields would make `defaults` useless for env and labels (a task that
adds one variable would lose all the shared ones); merging everything deeply would
make it impossible to replace a command. The rules, as documented in the language
reference:

- scalars and command/args: the task's value wins;
- mappings (resources.requests, nodeSelector, labels, annotations, affinity, backoff):
  merged key by key, the task's key wins;
- env and volumes: merged by `name`, volumeMounts by `mountPath`, the task's entry
  replacing the default's in place;
- envFrom and tolerations: the defaults' entries first, then the task's.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.spec.model import JSON

_BY_KEY = {"env": "name", "volumes": "name", "volumeMounts": "mountPath"}
_JOINED = frozenset({"envFrom", "tolerations"})
_DEEP = frozenset({"resources", "retries", "podOverrides", "result"})


def merge_by_key(base: list[JSON], override: list[JSON], key: str) -> list[JSON]:
    """`base` with entries of `override` replacing those with the same `key`, in place."""
    merged: list[JSON] = list(base)
    positions = {
        entry.get(key): index for index, entry in enumerate(merged) if isinstance(entry, dict)
    }
    for entry in override:
        name = entry.get(key) if isinstance(entry, dict) else None
        if name is not None and name in positions:
            merged[positions[name]] = entry
        else:
            merged.append(entry)
    return merged


def _merge_value(field: str, base: JSON, override: JSON) -> JSON:
    if isinstance(base, list) and isinstance(override, list):
        if field in _BY_KEY:
            return merge_by_key(base, override, _BY_KEY[field])
        if field in _JOINED:
            return [*base, *override]
        return override
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge_value(key, merged[key], value) if key in merged else value
        return merged
    return override


def merge_task(defaults: Mapping[str, JSON], task: Mapping[str, JSON]) -> dict[str, JSON]:
    """The task's raw fields with `defaults` merged in (neither argument is changed)."""
    merged = dict(defaults)
    for field, value in task.items():
        merged[field] = merge_field(field, merged[field], value) if field in merged else value
    return merged


def merge_field(field: str, default: JSON, own: JSON) -> JSON:
    """The merged value of a field that both the defaults and the task set."""
    if field in _DEEP or field in _BY_KEY or field in _JOINED:
        return _merge_value(field, default, own)
    return own
