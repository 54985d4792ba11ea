"""A worker pod, as the base manifests and their ConfigMap make it, holds none of the
controller's powers: through the control plane's real RBAC, its ServiceAccount cannot
read the database Secret, create or list pods, or take the controller's Lease; the
controller's own account can create pods only where workers run, and reads no Secret.

The manifests' RBAC objects are applied for real, into namespaces renamed for this
test (so a deployment of the base on the same cluster is not touched); tokens are the
ServiceAccounts' own, so every answer is the authorizer's.
"""

from __future__ import annotations

import base64
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

from controller.base.tries import TryKey
from controller.devcluster.readiness import admits_pods, wait_until
from controller.executor.kubernetes import settings_from_config
from controller.executor.podspec import PodIdentity, RenderedCommand, build_pod
from controller.settings.loading import load_config
from controller.spec.model import Task
from tests.deploy.manifests import render
from tests.fixtures.access import wait_authorized

pytestmark = pytest.mark.cluster

RBAC_KINDS = ("Namespace", "ServiceAccount", "Role", "RoleBinding")


@dataclass(frozen=True)
class Deployed:
    home: str
    workers: str
    worker_account: str
    clients: dict[str, kubernetes.client.ApiClient]


def base_config() -> Any:
    """The controller configuration of the base manifests' ConfigMap."""
    configmap = next(obj for obj in render("base") if obj["kind"] == "ConfigMap")
    return yaml.safe_load(configmap["data"]["config.yaml"])


def worker_pod() -> dict[str, Any]:
    """A task's pod as the controller builds it with the base manifests' configuration."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        path.write_text(yaml.safe_dump(base_config()))
        config = load_config(path=str(path), environ={})
    settings = settings_from_config(config, repo_url="https://example.com/dags.git", dags_path=".")
    identity = PodIdentity(
        dag="d",
        key=TryKey(1, "t", 0, 1),
        revision="0" * 40,
        controller="kubedag",
    )
    task = Task(name="t", image="busybox:1.36", command=("true",))
    return build_pod(task=task, identity=identity, rendered=RenderedCommand(), config=settings.pod)


def renamed(objects: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """The objects with every namespace in `names` renamed (metadata and subjects)."""
    text = yaml.safe_dump_all(objects)
    out = []
    for obj in yaml.safe_load_all(text):
        metadata = obj["metadata"]
        if obj["kind"] == "Namespace":
            metadata["name"] = names[metadata["name"]]
        elif "namespace" in metadata:
            metadata["namespace"] = names[metadata["namespace"]]
        for subject in obj.get("subjects", []):
            subject["namespace"] = names[subject["namespace"]]
        out.append(obj)
    return out


def token_client(
    admin: kubernetes.client.ApiClient, namespace: str, account: str
) -> kubernetes.client.ApiClient:
    """A client that authenticates only with the ServiceAccount's own token."""
    core = kubernetes.client.CoreV1Api(admin)
    deadline = time.monotonic() + 60
    while not (sa := core.read_namespaced_service_account(account, namespace)).secrets:
        assert time.monotonic() < deadline, f"no token was made for {namespace}/{account}"
        time.sleep(0.2)
    secret = core.read_namespaced_secret(sa.secrets[0].name, namespace, _request_timeout=10)
    configuration = kubernetes.client.Configuration()
    configuration.host = admin.configuration.host
    configuration.ssl_ca_cert = admin.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": base64.b64decode(secret.data["token"]).decode()}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return kubernetes.client.ApiClient(configuration)


@pytest.fixture(scope="module")
def deployed(kube: kubernetes.client.ApiClient) -> Iterator[Deployed]:
    suffix = uuid.uuid4().hex[:6]
    names = {"kubedag": f"kd-{suffix}", "kubedag-workers": f"kd-{suffix}-workers"}
    objects = renamed([o for o in render("base") if o["kind"] in RBAC_KINDS], names)
    core = kubernetes.client.CoreV1Api(kube)
    rbac = kubernetes.client.RbacAuthorizationV1Api(kube)
    create: dict[str, Callable[..., Any]] = {
        "ServiceAccount": core.create_namespaced_service_account,
        "Role": rbac.create_namespaced_role,
        "RoleBinding": rbac.create_namespaced_role_binding,
    }
    for obj in sorted(objects, key=lambda o: RBAC_KINDS.index(o["kind"])):
        if obj["kind"] == "Namespace":
            core.create_namespace(obj, _request_timeout=10)
        else:
            create[obj["kind"]](obj["metadata"]["namespace"], obj, _request_timeout=10)
    for namespace in names.values():
        core.create_namespaced_secret(
            namespace,
            {"metadata": {"name": "kubedag-database"}, "stringData": {"url": "postgresql://x"}},
            _request_timeout=10,
        )
    pod = worker_pod()
    worker_account = pod["spec"]["serviceAccountName"]
    workers = names[pod["metadata"]["namespace"]]
    # The controller's pod creation is asserted to succeed: only once admission can.
    wait_until(
        lambda: admits_pods(core, workers),
        timeout=30,
        what=f"namespace {workers} to admit pods (its default ServiceAccount's token)",
    )
    # The test below has the controller's pod creation succeed: only once its binding can.
    wait_authorized(
        kube,
        user=f"system:serviceaccount:{names['kubedag']}:kubedag-controller",
        namespace=workers,
        verb="create",
        resource="pods",
    )
    clients = {
        "worker": token_client(kube, workers, worker_account),
        "controller": token_client(kube, names["kubedag"], "kubedag-controller"),
    }
    try:
        yield Deployed(names["kubedag"], workers, worker_account, clients)
    finally:
        for client in clients.values():
            client.close()
        for namespace in names.values():
            core.delete_namespace(namespace, _request_timeout=10)


def status_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """The HTTP status the API server answers `call` with (200 when it succeeds)."""
    try:
        call(*args, _request_timeout=10, **kwargs)
    except kubernetes.client.ApiException as error:
        return int(error.status)
    return 200


def pod_creation(client: kubernetes.client.ApiClient, namespace: str) -> int:
    """The status of creating a pod in `namespace` (a dry run: nothing is stored)."""
    pod = {
        "metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    core = kubernetes.client.CoreV1Api(client)
    return status_of(core.create_namespaced_pod, namespace, pod, dry_run="All")


def test_worker_pods_run_in_their_own_namespace_as_their_own_account() -> None:
    pod = worker_pod()
    assert pod["metadata"]["namespace"] == "kubedag-workers"
    assert pod["spec"]["serviceAccountName"] == "kubedag-worker"
    account = next(
        o
        for o in render("base")
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "kubedag-worker"
    )
    assert account["automountServiceAccountToken"] is False


def test_a_worker_pods_account_cannot_read_the_database_secret(deployed: Deployed) -> None:
    core = kubernetes.client.CoreV1Api(deployed.clients["worker"])
    for namespace in (deployed.home, deployed.workers):
        assert status_of(core.read_namespaced_secret, "kubedag-database", namespace) == 403
        assert status_of(core.list_namespaced_secret, namespace) == 403


def test_a_worker_pods_account_cannot_act_as_the_controller(deployed: Deployed) -> None:
    worker = deployed.clients["worker"]
    core = kubernetes.client.CoreV1Api(worker)
    leases = kubernetes.client.CoordinationV1Api(worker)
    for namespace in (deployed.home, deployed.workers):
        assert pod_creation(worker, namespace) == 403, namespace
        assert status_of(core.list_namespaced_pod, namespace) == 403, namespace
        assert status_of(leases.read_namespaced_lease, "kubedag-controller", namespace) == 403


def test_the_controller_creates_pods_only_where_workers_run_and_reads_no_secret(
    deployed: Deployed,
) -> None:
    controller = deployed.clients["controller"]
    core = kubernetes.client.CoreV1Api(controller)
    assert pod_creation(controller, deployed.workers) == 200
    assert pod_creation(controller, deployed.home) == 403
    for namespace in (deployed.home, deployed.workers):
        assert status_of(core.read_namespaced_secret, "kubedag-database", namespace) == 403
