"""Rules of the Kubernetes API server on the pod fields a task sets.

A task's env, envFrom and podOverrides are handed to the API server as they are
written, and it refuses a pod that breaks its rules (422 Unprocessable Entity) only
when the pod is created: at run time, hours after the push. So the rules it applies
to these fields are applied here first, each as Kubernetes states it
(pkg/apis/core/validation in kubernetes/kubernetes), at the field that breaks it.

Only rules about one field at a time or about fields next to each other live here;
those the JSON Schema can say clearly (a toleration with operator Exists has no
value, tolerationSeconds needs effect NoExecute, a toleration without a key needs
Exists, subPath and subPathExpr exclude each other, value and valueFrom exclude each
other) are in the schema, where editors show them too.
"""

from __future__ import annotations

from controller.spec.loader import Path
from controller.spec.model import JSON
from controller.spec.names import RESERVED_LABEL_PREFIX, label_key_problem, label_value_problem
from controller.spec.report import Reporter, as_dict, as_list

_VALUE_SOURCES = ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef")
_ENV_SOURCES = ("configMapRef", "secretRef")


def check_labels(report: Reporter, where: Path, owner: JSON) -> None:
    """The `labels` of `owner` follow Kubernetes' label rules."""
    for key, value in as_dict(as_dict(owner).get("labels")).items():
        problem = label_key_problem(key)
        if problem is not None:
            report.at((*where, key), f"label {problem}", key=True)
        if isinstance(value, str) and (problem := label_value_problem(value)) is not None:
            report.at((*where, key), problem)


def check_pod_overrides(report: Reporter, where: Path, overrides: dict[str, JSON]) -> None:
    check_labels(report, (*where, "labels"), overrides)
    for key in as_dict(overrides.get("labels")):
        if key.startswith(RESERVED_LABEL_PREFIX):
            report.at(
                (*where, "labels", key),
                f"label {key!r}: the {RESERVED_LABEL_PREFIX} prefix is reserved for kubedag",
                key=True,
            )
    for key in as_dict(overrides.get("annotations")):
        if (problem := label_key_problem(key)) is not None:
            report.at((*where, "annotations", key), f"annotation {problem}", key=True)
    for key, value in as_dict(overrides.get("nodeSelector")).items():
        problem = label_key_problem(key)
        if problem is None and isinstance(value, str):
            problem = label_value_problem(value)
        if problem is not None:
            report.at((*where, "nodeSelector", key), f"nodeSelector {problem}")
    for index, toleration in enumerate(as_list(overrides.get("tolerations"))):
        if isinstance(toleration, dict):
            _check_toleration(report, (*where, "tolerations", index), toleration)
    _check_volume_mounts(report, (*where, "volumeMounts"), as_list(overrides.get("volumeMounts")))


def _check_toleration(report: Reporter, where: Path, toleration: dict[str, JSON]) -> None:
    """A toleration's key is a label key; with operator Equal its value is a label value."""
    key = toleration.get("key")
    if isinstance(key, str) and key and (problem := label_key_problem(key)) is not None:
        report.at((*where, "key"), f"toleration {problem}")
    value = toleration.get("value")
    if (
        toleration.get("operator", "Equal") == "Equal"
        and isinstance(value, str)
        and (problem := label_value_problem(value)) is not None
    ):
        report.at((*where, "value"), f"toleration value: {problem}")


def _check_volume_mounts(report: Reporter, where: Path, mounts: list[JSON]) -> None:
    """subPath and subPathExpr stay inside the volume, and no two mounts share a path.

    Mounts of the same volume are merged into one before the pod is created, so only
    mounts of different volumes at one path reach the API server as a conflict.
    """
    volume_at: dict[str, JSON] = {}
    for index, mount in enumerate(mounts):
        mount = as_dict(mount)
        for field in ("subPath", "subPathExpr"):
            path = mount.get(field)
            if isinstance(path, str) and (problem := _descending_path_problem(path)):
                report.at((*where, index, field), f"{field} {path!r} {problem}")
        mount_path, volume = mount.get("mountPath"), mount.get("name")
        if not isinstance(mount_path, str):
            continue
        if mount_path in volume_at and volume_at[mount_path] != volume:
            report.at(
                (*where, index, "mountPath"),
                f"mountPath {mount_path!r} is already where volume "
                f"{volume_at[mount_path]!r} is mounted; each mount needs a path of its own",
            )
        volume_at.setdefault(mount_path, volume)


def _descending_path_problem(path: str) -> str | None:
    if path.startswith("/"):
        return "must be a relative path inside the volume"
    if ".." in path.split("/"):
        return "must not contain '..': it must stay inside the volume"
    return None


def check_env(report: Reporter, where: Path, env: list[JSON]) -> None:
    """Every valueFrom names exactly one source."""
    for index, variable in enumerate(env):
        value_from = as_dict(variable).get("valueFrom")
        if isinstance(value_from, dict):
            named = [source for source in _VALUE_SOURCES if source in value_from]
            if len(named) != 1:
                report.at(
                    (*where, index, "valueFrom"),
                    "valueFrom must name exactly one of "
                    + ", ".join(_VALUE_SOURCES)
                    + (f", not {' and '.join(named)}" if named else ""),
                )


def check_env_from(report: Reporter, where: Path, env_from: list[JSON]) -> None:
    """Every envFrom entry imports exactly one ConfigMap or Secret."""
    for index, entry in enumerate(env_from):
        if isinstance(entry, dict) and sum(source in entry for source in _ENV_SOURCES) != 1:
            report.at(
                (*where, index),
                "an envFrom entry imports exactly one of configMapRef or secretRef",
            )
