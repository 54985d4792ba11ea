"""A container's environment, resolved the way a kubelet resolves it.

Plain values, `valueFrom` (secretKeyRef, configMapKeyRef, the basic fieldRefs) and
`envFrom` (with prefix) are read from the API at container start; a missing, non
optional reference is a ConfigError, which the agent reports as the container waiting
with reason CreateContainerConfigError and retries, as a kubelet does. `$(VAR)` in
env values, command and args expands against the variables defined before it.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from controller.nodeagent.podstate import JSON
from controller.nodeagent.rawapi import ApiError, RawApi

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_INDEX = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(Exception):
    """A container cannot be configured yet (a referenced Secret or key is missing)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: unknown references stay as written; $$ escapes."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


class _Objects:
    """Secrets and ConfigMaps of one namespace, each read at most once per container start."""

    def __init__(self, api: RawApi, namespace: str) -> None:
        self._api, self._namespace = api, namespace
        self._cache: dict[tuple[str, str], JSON | None] = {}

    def data(self, kind: str, name: str) -> dict[str, str] | None:
        key = (kind, name)
        if key not in self._cache:
            try:
                self._cache[key] = self._api.request(
                    "GET", f"/api/v1/namespaces/{self._namespace}/{kind}/{name}"
                )
            except ApiError as error:
                if error.status != 404:
                    raise ConfigError(f"cannot read {kind[:-1]} {name!r}: {error}") from None
                self._cache[key] = None
        obj = self._cache[key]
        if obj is None:
            return None
        raw: dict[str, str] = obj.get("data") or {}
        if kind == "secrets":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()}
        return dict(raw)


def _field(pod: JSON, path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    indexed = _FIELD_INDEX.match(path)
    if indexed:
        return str((meta.get(indexed.group(1)) or {}).get(indexed.group(2), ""))
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP") or "127.0.0.1",
        "status.podIP": status.get("podIP") or "127.0.0.1",
    }
    if path not in simple:
        raise ConfigError(f"fieldRef {path!r} is not supported by the node agent")
    return str(simple[path] or "")


def _from_ref(objects: _Objects, kind: str, ref: JSON) -> str | None:
    data = objects.data(kind, ref["name"])
    label = "secret" if kind == "secrets" else "configmap"
    if data is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{label} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {label} {ref['name']}")
    return data[ref["key"]]


def container_env(api: RawApi, *, pod: JSON, container: JSON) -> dict[str, str]:
    """The container's environment as its process should see it (without base variables)."""
    objects = _Objects(api, pod["metadata"]["namespace"])
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        kind, ref = (
            ("secrets", source["secretRef"])
            if "secretRef" in source
            else ("configmaps", source["configMapRef"])
        )
        data = objects.data(kind, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            label = "secret" if kind == "secrets" else "configmap"
            raise ConfigError(f'{label} "{ref["name"]}" not found')
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        value_from = var.get("valueFrom")
        if value_from is None:
            env[var["name"]] = expand(var.get("value", ""), env)
            continue
        value: str | None
        if "secretKeyRef" in value_from:
            value = _from_ref(objects, "secrets", value_from["secretKeyRef"])
        elif "configMapKeyRef" in value_from:
            value = _from_ref(objects, "configmaps", value_from["configMapKeyRef"])
        elif "fieldRef" in value_from:
            value = _field(pod, value_from["fieldRef"]["fieldPath"])
        else:
            raise ConfigError(
                f"env {var['name']}: this kind of valueFrom is not supported by the node agent"
            )
        if value is not None:
            env[var["name"]] = value
    return env


def volume_files(api: RawApi, *, pod: JSON, volume: JSON) -> dict[str, str] | None:
    """Files of a secret or configMap volume (key -> content), or None for other kinds."""
    objects = _Objects(api, pod["metadata"]["namespace"])
    for kind, key, name_key in (
        ("secrets", "secret", "secretName"),
        ("configmaps", "configMap", "name"),
    ):
        source = volume.get(key)
        if source is None:
            continue
        data = objects.data(kind, source[name_key])
        if data is None:
            if source.get("optional"):
                return {}
            raise ConfigError(f'{key} "{source[name_key]}" not found')
        items = source.get("items")
        if items:
            return {item["path"]: data[item["key"]] for item in items if item["key"] in data}
        return data
    return None
