"""kubedag as a user installs it: `kubectl apply -k` of the base plus the real-node overlay.

The only thing this adds is what every install sets for itself: the ConfigMap's git
URL and timings (a patch over the rendered base config, so whatever the base says
about namespaces and paths stays as shipped), and the Secrets for the database and
the git token. The controller then runs from the image built from the Dockerfile.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import yaml

from tests.deploy.manifests import MANIFESTS, kubectl, render

OVERLAY = MANIFESTS / "overlays" / "local-real-node"
HOME = "kubedag"
CONTROLLER = "kubedag-controller"
CONTROLLER_LABEL = "app.kubernetes.io/name=kubedag-controller"
KUBECTL_TIMEOUT = 120.0


def controller_url() -> str:
    """The controller's HTTP address: the overlay runs it on the host's network."""
    deployment = next(o for o in render("overlays/local-real-node") if o["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port = next(e["value"] for e in container["env"] if e["name"] == "KUBEDAG_HTTP_PORT")
    return f"http://127.0.0.1:{port}"


def base_config() -> dict[str, Any]:
    """The controller config the overlay ships (the ConfigMap's config.yaml)."""
    config_map = next(o for o in render("overlays/local-real-node") if o["kind"] == "ConfigMap")
    loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return loaded


def worker_namespaces() -> list[str]:
    return list(base_config()["executor"]["namespaces"])


def install_config(*, repo_url: str, dags_path: str) -> dict[str, Any]:
    config = base_config()
    config["git"] = {**config["git"], "url": repo_url, "dagsPath": dags_path, "interval": "2s"}
    config["executor"] = {
        **config["executor"],
        "reconcileInterval": "5s",
        "unschedulableTimeout": "10s",
    }
    config["leaderElection"] = {
        **config["leaderElection"],
        "leaseDuration": "6s",
        "renewDeadline": "4s",
        "retryPeriod": "1s",
    }
    return config


def write_kustomization(folder: Path, config: dict[str, Any]) -> Path:
    """An install's own kustomization: the overlay plus its ConfigMap."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kubectl 1.20's kustomize takes relative bases only.
                "bases": [os.path.relpath(OVERLAY, folder)],
                "patchesStrategicMerge": ["config.yaml"],
            }
        )
    )
    (folder / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kubedag-config", "namespace": HOME},
                "data": {"config.yaml": yaml.safe_dump(config)},
            }
        )
    )
    return folder


def run_kubectl(kubeconfig: Path, *args: str) -> str:
    result = subprocess.run(
        [kubectl(), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=KUBECTL_TIMEOUT,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def ensure_namespace(core: kubernetes.client.CoreV1Api, name: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            core.create_namespace({"metadata": {"name": name}}, _request_timeout=10)
            return
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
        if core.read_namespace(name, _request_timeout=10).status.phase != "Terminating":
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"namespace {name} stays Terminating")
        time.sleep(1)


def put_secret(
    core: kubernetes.client.CoreV1Api, namespace: str, name: str, data: dict[str, str]
) -> None:
    body = {"metadata": {"name": name}, "stringData": data}
    try:
        core.create_namespaced_secret(namespace, body, _request_timeout=10)
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
        core.replace_namespaced_secret(name, namespace, body, _request_timeout=10)


@dataclass
class ControllerPods:
    """Reads the controller's pods, and their logs, for assertions and failure messages."""

    core: kubernetes.client.CoreV1Api

    def pods(self, *, include_terminating: bool = False) -> list[Any]:
        listed = self.core.list_namespaced_pod(
            HOME, label_selector=CONTROLLER_LABEL, _request_timeout=10
        )
        return [
            p for p in listed.items if include_terminating or p.metadata.deletion_timestamp is None
        ]

    def ready_pod(self) -> str | None:
        for pod in self.pods():
            statuses = pod.status.container_statuses or []
            if statuses and all(s.ready for s in statuses):
                return str(pod.metadata.name)
        return None

    def diagnosis(self) -> str:
        """What `kubectl describe` and `kubectl logs --previous` would show."""
        lines = []
        for pod in self.pods(include_terminating=True):
            lines.append(f"pod {pod.metadata.name}: phase {pod.status.phase}")
            for status in pod.status.container_statuses or []:
                lines.append(f"  {status.name}: restarts {status.restart_count} {status.state}")
                for previous in (True, False):
                    try:
                        log = self.core.read_namespaced_pod_log(
                            pod.metadata.name,
                            HOME,
                            container=status.name,
                            previous=previous,
                            tail_lines=30,
                            _request_timeout=10,
                        )
                    except kubernetes.client.ApiException:
                        continue
                    lines.append(f"  --- log{' (previous)' if previous else ''}:\n{log}")
        events = self.core.list_namespaced_event(HOME, _request_timeout=10).items
        lines += [f"event {e.involved_object.name}: {e.reason}: {e.message}" for e in events[-15:]]
        return "\n".join(lines)
