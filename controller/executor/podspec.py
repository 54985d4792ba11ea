"""The worker pod of one task try, as a plain dict the Kubernetes API accepts as-is.

Everything the launcher creates comes from `build_pod`, a pure function of the task,
the try's identity, the already-rendered command and the operator's config, so the
exact pod can be reviewed in golden files and re-derived after a crash (same input,
same name, same pod).

What the function guarantees, whatever the layers say (see podmerge for the layers):
- the name, namespace, kubedag's labels and annotations, the result finalizer and
  `restartPolicy: Never` are applied last, so neither a template nor podOverrides can
  hide a pod from the watch or make it restart a finished task;
- the command and args stay argv elements: nothing from the DAG is run by a shell;
- no credential value is ever written into the pod, only a reference to its Secret.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from controller.base import naming
from controller.base.tries import TryKey
from controller.executor import gitcheckout
from controller.executor.podmerge import merge, overrides_layer
from controller.spec.model import Task

TASK_CONTAINER = "task"
WORKSPACE_VOLUME = "workspace"
RESULT_FINALIZER = "kubedag.io/result"
"""Held until the controller stored the pod's result and logs; it then removes it."""

IDENTITY_FIELDS = frozenset(
    {"serviceAccountName", "serviceAccount", "automountServiceAccountToken"}
)
"""Pod fields by which a template, the config or podOverrides ask for an API identity."""

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
NON_ROOT_ID = 65532
"""The conventional "nonroot" user of distroless images; nothing on a node owns it."""

_DEFAULT_INIT_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


@dataclass(frozen=True)
class PodIdentity:
    """Which try a pod runs, of which DAG, and at which commit."""

    dag: str
    key: TryKey
    revision: str
    controller: str
    dag_file: str | None = None
    """The DAG file's path inside the repository at `revision`; its folder is the task's
    default working directory. Without it, the config's dags_path is used."""


class Rendered(Protocol):
    """A try's command, args and env with every template rendered (the engine's
    RenderedTask fits as it is)."""

    @property
    def command(self) -> tuple[str, ...]: ...
    @property
    def args(self) -> tuple[str, ...]: ...
    @property
    def env(self) -> tuple[Mapping[str, Any], ...]: ...


@dataclass(frozen=True)
class RenderedCommand:
    """The task's command, args and env with every template already rendered."""

    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, kw_only=True)
class PodConfig:
    """The operator's settings for every worker pod (from the controller's config)."""

    repo_url: str
    namespace: str = "default"
    dags_path: str = ""
    """Where the DAG files live inside the repository; the task's default workingDir."""
    init_image: str = "alpine/git:2.45.2"
    init_resources: Mapping[str, Any] = field(default_factory=lambda: dict(_DEFAULT_INIT_RESOURCES))
    git_secret_name: str | None = None
    git_secret_key: str = "token"  # noqa: S105 - a key in the Secret, not a token
    git_username: str = "x-access-token"
    """Sent with the token; GitHub wants x-access-token, GitLab oauth2, most hosts any."""
    workspace_mount_path: str = "/workspace"
    pod_template: Mapping[str, Any] | None = None
    security_defaults: bool = True
    service_account_name: str | None = None
    image_pull_policy: str | None = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    extra_annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if _has_credentials(self.repo_url):
            raise ValueError(
                "the repository URL must not contain credentials: put the token in a Secret "
                "and set git_secret_name"
            )
        if not posixpath.isabs(self.workspace_mount_path):
            raise ValueError(f"workspace_mount_path must be absolute: {self.workspace_mount_path}")

    @property
    def checkout_dir(self) -> str:
        return posixpath.join(self.workspace_mount_path, "repo")


def _has_credentials(url: str) -> bool:
    """A password anywhere, or any user part of an http(s) URL (tokens hide there too)."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            return True
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.username is not None


def identity_labels(identity: PodIdentity) -> dict[str, str]:
    """The labels the watch selects on and the reconciler reads; all valid label values."""
    return {
        naming.MANAGED_BY_LABEL: naming.MANAGED_BY_VALUE,
        naming.DAG_LABEL: naming.label_value(identity.dag),
        naming.RUN_ID_LABEL: naming.label_value(str(identity.key.run_id)),
        naming.TASK_LABEL: naming.label_value(identity.key.task),
        naming.ITEM_LABEL: naming.label_value(str(identity.key.item_index)),
        naming.TRY_LABEL: naming.label_value(str(identity.key.try_number)),
        naming.CONTROLLER_LABEL: naming.label_value(identity.controller),
    }


def identity_annotations(identity: PodIdentity) -> dict[str, str]:
    """The same identity unhashed: labels may be cut to fit, annotations never are."""
    return {
        naming.DAG_LABEL: identity.dag,
        naming.RUN_ID_LABEL: str(identity.key.run_id),
        naming.TASK_LABEL: identity.key.task,
        naming.ITEM_LABEL: str(identity.key.item_index),
        naming.TRY_LABEL: str(identity.key.try_number),
        naming.CONTROLLER_LABEL: identity.controller,
        naming.REVISION_ANNOTATION: identity.revision,
    }


def identity_env(identity: PodIdentity) -> list[dict[str, Any]]:
    return [
        {"name": "KUBEDAG_DAG", "value": identity.dag},
        {"name": "KUBEDAG_RUN_ID", "value": str(identity.key.run_id)},
        {"name": "KUBEDAG_TASK", "value": identity.key.task},
        {"name": "KUBEDAG_ITEM_INDEX", "value": str(identity.key.item_index)},
        {"name": "KUBEDAG_TRY", "value": str(identity.key.try_number)},
        {"name": "KUBEDAG_REVISION", "value": identity.revision},
        {"name": "KUBEDAG_RESULT_PATH", "value": TERMINATION_MESSAGE_PATH},
    ]


def working_dir(*, task: Task, identity: PodIdentity, config: PodConfig) -> str | None:
    """The task's working directory: the DAG file's folder in the checkout unless it says.

    A relative workingDir is taken from that folder (and must stay inside the checkout);
    an absolute one is a path in the task's image and is kept. Without a checkout there
    is no folder: the image's own working directory, unless an absolute one is given.
    """
    if not task.checkout:
        if task.working_dir is None or posixpath.isabs(task.working_dir):
            return task.working_dir
        raise ValueError(
            f"task {task.name}: workingDir {task.working_dir!r} is relative, but the task "
            "has no checkout"
        )
    root = config.checkout_dir
    folder = config.dags_path if identity.dag_file is None else posixpath.dirname(identity.dag_file)
    default = posixpath.normpath(posixpath.join(root, folder))
    if task.working_dir is None:
        resolved = default
    elif posixpath.isabs(task.working_dir):
        return task.working_dir
    else:
        resolved = posixpath.normpath(posixpath.join(default, task.working_dir))
    if resolved != root and not resolved.startswith(root + "/"):
        raise ValueError(f"task {task.name}: workingDir {resolved!r} is outside the checkout")
    return resolved


def _container_security(config: PodConfig) -> dict[str, Any] | None:
    if not config.security_defaults:
        return None
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _pod_security(config: PodConfig) -> dict[str, Any] | None:
    if not config.security_defaults:
        return None
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_ID,
        "runAsGroup": NON_ROOT_ID,
        "fsGroup": NON_ROOT_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def task_container(
    *, task: Task, identity: PodIdentity, rendered: Rendered, config: PodConfig
) -> dict[str, Any]:
    # kubedag's variables come first so the task's own env can refer to them as $(NAME);
    # a task entry reusing one of their names is dropped, so the identity cannot lie.
    own = identity_env(identity)
    reserved = {entry["name"] for entry in own}
    env = own + [dict(entry) for entry in rendered.env if entry.get("name") not in reserved]
    container: dict[str, Any] = {"name": TASK_CONTAINER, "image": task.image}
    if rendered.command:
        container["command"] = list(rendered.command)
    if rendered.args:
        container["args"] = list(rendered.args)
    directory = working_dir(task=task, identity=identity, config=config)
    if directory is not None:
        container["workingDir"] = directory
    container["env"] = env
    if task.env_from:
        container["envFrom"] = [dict(entry) for entry in task.env_from]
    if task.resources:
        container["resources"] = dict(task.resources)
    if task.checkout:
        container["volumeMounts"] = [
            {"name": WORKSPACE_VOLUME, "mountPath": config.workspace_mount_path}
        ]
    container["terminationMessagePath"] = TERMINATION_MESSAGE_PATH
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    if config.image_pull_policy is not None:
        container["imagePullPolicy"] = config.image_pull_policy
    security = _container_security(config)
    if security is not None:
        container["securityContext"] = security
    return container


def _checkout_container(*, identity: PodIdentity, config: PodConfig) -> dict[str, Any]:
    return gitcheckout.checkout_container(
        image=config.init_image,
        env=gitcheckout.checkout_env(
            repo_url=config.repo_url,
            revision=identity.revision,
            checkout_dir=config.checkout_dir,
            secret_name=config.git_secret_name,
            secret_key=config.git_secret_key,
            username=config.git_username,
        ),
        workspace_mount_path=config.workspace_mount_path,
        resources=config.init_resources,
        security_context=_container_security(config),
        image_pull_policy=config.image_pull_policy,
    )


def _kubedag_layer(
    *, task: Task, identity: PodIdentity, rendered: Rendered, config: PodConfig
) -> dict[str, Any]:
    spec: dict[str, Any] = {"restartPolicy": "Never"}
    if task.checkout:
        spec["initContainers"] = [_checkout_container(identity=identity, config=config)]
    spec["containers"] = [
        task_container(task=task, identity=identity, rendered=rendered, config=config)
    ]
    if task.checkout:
        spec["volumes"] = [{"name": WORKSPACE_VOLUME, "emptyDir": {}}]
    if task.timeout_seconds is not None:
        spec["activeDeadlineSeconds"] = task.timeout_seconds
    if config.service_account_name is not None:
        spec["serviceAccountName"] = config.service_account_name
    security = _pod_security(config)
    if security is not None:
        spec["securityContext"] = security
    return {
        "metadata": {
            "labels": dict(config.extra_labels),
            "annotations": dict(config.extra_annotations),
        },
        "spec": spec,
    }


def build_pod(
    *, task: Task, identity: PodIdentity, rendered: Rendered, config: PodConfig
) -> dict[str, Any]:
    """The Pod for one try: template, then kubedag's fields, then podOverrides, then identity."""
    name = naming.pod_name(dag=identity.dag, key=identity.key)
    pod: dict[str, Any] = merge(
        dict(config.pod_template or {}),
        _kubedag_layer(task=task, identity=identity, rendered=rendered, config=config),
    )
    pod = merge(pod, overrides_layer(task.pod_overrides, container_name=TASK_CONTAINER))
    metadata = pod.setdefault("metadata", {})
    for server_owned in ("generateName", "uid", "resourceVersion", "creationTimestamp"):
        metadata.pop(server_owned, None)
    metadata["name"] = name
    metadata["namespace"] = config.namespace
    metadata["labels"] = {**(metadata.get("labels") or {}), **identity_labels(identity)}
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        **identity_annotations(identity),
    }
    finalizers = [f for f in metadata.get("finalizers") or [] if f != RESULT_FINALIZER]
    metadata["finalizers"] = [*finalizers, RESULT_FINALIZER]
    spec = pod["spec"]
    spec["restartPolicy"] = "Never"
    if not IDENTITY_FIELDS & spec.keys():
        # Nobody asked for an identity: no API token in the pod. The ServiceAccount
        # admission would otherwise add a projected token volume to every pod (a bigger
        # object to store and watch, and on a real node a TokenRequest per pod) that a
        # task without an identity never uses. A named account keeps its own setting.
        spec["automountServiceAccountToken"] = False
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod["spec"]}
