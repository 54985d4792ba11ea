"""Every manifest passes the real API server's validation (server-side dry run)."""

from __future__ import annotations

import inspect
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes.client
import pytest
import yaml

from controller.process.http import HttpServer
from tests.deploy.manifests import KUSTOMIZATIONS, for_local_server, kubectl, render

pytestmark = pytest.mark.cluster


def _ensure_namespace(core: kubernetes.client.CoreV1Api, name: str) -> bool:
    """Create `name` (waiting out an earlier run's deletion); True if this call made it."""
    deadline = time.monotonic() + 120
    while True:
        try:
            core.create_namespace({"metadata": {"name": name}}, _request_timeout=10)
            return True
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
        existing = core.read_namespace(name, _request_timeout=10)
        if existing.status.phase != "Terminating":
            return False
        if time.monotonic() > deadline:
            raise TimeoutError(f"namespace {name} stays Terminating")
        time.sleep(1)


@pytest.fixture(scope="module")
def home_namespaces(kube: kubernetes.client.ApiClient) -> Iterator[None]:
    """The namespaces the manifests name, which a dry run cannot create for real."""
    core = kubernetes.client.CoreV1Api(kube)
    created = [name for name in ("kubedag", "kubedag-workers") if _ensure_namespace(core, name)]
    yield
    for name in created:
        core.delete_namespace(name, _request_timeout=10)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_manifests_pass_server_side_dry_run(
    kustomization: str, cluster: object, home_namespaces: None, tmp_path: Path
) -> None:
    objects = for_local_server(render(kustomization))
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    result = subprocess.run(
        [
            kubectl(),
            "--kubeconfig",
            str(cluster.kubeconfig),  # type: ignore[attr-defined]
            "apply",
            "--dry-run=server",
            "-f",
            str(rendered),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objects)


def test_role_is_namespaced_and_grants_no_secrets() -> None:
    for kustomization in KUSTOMIZATIONS:
        for obj in render(kustomization):
            assert obj["kind"] not in {"ClusterRole", "ClusterRoleBinding"}
            if obj["kind"] == "Role":
                resources = {r for rule in obj["rules"] for r in rule["resources"]}
                assert "secrets" not in resources
                assert all("*" not in rule["verbs"] for rule in obj["rules"])


def test_controller_runs_unprivileged_with_read_only_root() -> None:
    deployment = next(o for o in render("base") if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] >= 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # The probe waits longer than /readyz gives its checks, so a slow check is reported
    # as such, not cut off as a timeout.
    check_timeout = inspect.signature(HttpServer).parameters["check_timeout"].default
    assert container["readinessProbe"]["timeoutSeconds"] > check_timeout
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["KUBEDAG_DATABASE_URL"]["valueFrom"]


def test_no_secret_value_is_written_in_the_manifests() -> None:
    for kustomization in KUSTOMIZATIONS:
        kinds = {obj["kind"] for obj in render(kustomization)}
        assert "Secret" not in kinds
