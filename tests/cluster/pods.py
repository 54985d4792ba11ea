"""Small builders and waits shared by the cluster tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kubernetes.client

from controller.nodeagent import behaviour as b


def scripted_pod(name: str, *, init: bool = False, **behaviour: str) -> dict[str, Any]:
    """A pod run by script; keyword names are annotation suffixes with _ for -."""
    annotations = {b.MODE: b.SCRIPTED}
    annotations.update({b.PREFIX + k.replace("_", "-"): v for k, v in behaviour.items()})
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox"}],
    }
    if init:
        spec["initContainers"] = [{"name": "fetch", "image": "alpine/git"}]
    return {"metadata": {"name": name, "annotations": annotations}, "spec": spec}


def process_pod(name: str, *, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "python:3.12-slim", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def wait_pod(
    core: kubernetes.client.CoreV1Api,
    namespace: str,
    name: str,
    until: Callable[[kubernetes.client.V1Pod], bool],
    *,
    timeout: float = 20.0,
) -> kubernetes.client.V1Pod:
    deadline = time.monotonic() + timeout
    pod = None
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace, _request_timeout=5)
        if until(pod):
            return pod
        time.sleep(0.1)
    raise AssertionError(f"pod {namespace}/{name} did not get there in {timeout}s: {pod}")


def finished(pod: kubernetes.client.V1Pod) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def main_state(pod: kubernetes.client.V1Pod) -> Any:
    return pod.status.container_statuses[0].state


def pod_exists(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace, _request_timeout=5)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def wait_gone(
    core: kubernetes.client.CoreV1Api, namespace: str, name: str, *, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pod_exists(core, namespace, name):
            return
        time.sleep(0.1)
    raise AssertionError(f"pod {namespace}/{name} was not removed in {timeout}s")
