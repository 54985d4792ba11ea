"""Fixtures for the real-node suite: the cluster with a kubelet, and kubedag deployed in it.

The real-node cluster (`kubedag dev-cluster --node=real`) has its own data dir and ports,
so it runs beside the node-agent test cluster; sessions share it through leases, as they
share that one. It needs root (mounts, network namespaces, a bridge); elsewhere this
suite is skipped with that reason. The first session builds the images (minutes; cached).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client
import pytest
from sqlalchemy import make_url

from controller.devcluster import ClusterConfig, LocalCluster, sharing
from controller.devcluster.layout import REAL_PORT_BASE, default_data_dir
from controller.devcluster.pki import REAL_NODE_IP
from controller.devcluster.readiness import wait_until
from controller.store import Store, upgrade
from tests.e2e.repo import Repository
from tests.fixtures.database import _admin_connection
from tests.fixtures.gate import Gate
from tests.realnode.deployment import (
    CONTROLLER,
    HOME,
    ControllerPods,
    ensure_namespace,
    install_config,
    put_secret,
    run_kubectl,
    worker_namespaces,
    write_kustomization,
)
from tests.realnode.gitserver import GitServer

GIT_TOKEN = "kdg-real-node-token-5c1e"
API_TOKEN = "kdg-real-node-api-token-93af"
CONTROLLER_STOP_SECONDS = 60.0


def real_cluster_config() -> ClusterConfig:
    return ClusterConfig(
        data_dir=default_data_dir("real"), port_base=REAL_PORT_BASE, real_node=True
    )


def needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("the real node (kubelet + containerd) needs root on Debian")


@pytest.fixture(scope="session")
def real_cluster(pytestconfig: pytest.Config) -> Iterator[LocalCluster]:
    needs_root()
    cluster = LocalCluster(real_cluster_config())
    # The first session builds images for minutes: let its progress reach the terminal.
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        sharing.acquire(cluster, with_node_agent=False)
    try:
        yield cluster
    finally:
        sharing.release(cluster)


@pytest.fixture(scope="session")
def real_kube(real_cluster: LocalCluster) -> Iterator[kubernetes.client.ApiClient]:
    with real_cluster.api_client() as client:
        yield client


@pytest.fixture
def gate() -> Iterator[Gate]:
    """A gate on the node's address, where worker pods reach the host."""
    opened = Gate(REAL_NODE_IP)
    yield opened
    opened.close()


@dataclass
class Deployment:
    """kubedag deployed into the real-node cluster, following `repository`."""

    cluster: LocalCluster
    kube: kubernetes.client.ApiClient
    repository: Repository
    git: GitServer
    store: Store
    store_url: str
    workers: str
    controller: ControllerPods

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.kube)


def uninstall(
    core: kubernetes.client.CoreV1Api,
    kubeconfig: Path,
    kustomization: Path,
    *,
    namespaces: set[str],
) -> None:
    """`kubectl delete -k` of an install, live or left behind by a killed session.

    Worker pods keep kubedag's finalizer until a controller stores their result, and a
    controller left running (a node brought back up restarts it) goes on launching them.
    So the controller goes first, then every pod is freed and removed without waiting for
    a kubelet, and only then the namespaces; if they still hang, the error says on what."""
    apps = kubernetes.client.AppsV1Api(core.api_client)
    with contextlib.suppress(kubernetes.client.ApiException):
        apps.delete_namespaced_deployment(CONTROLLER, HOME, _request_timeout=10)
    controller = ControllerPods(core)
    # Its grace period and then some; a pod still there is on a kubelet that cannot stop
    # it (a node restarted under it), and goes from the API with the worker pods below.
    given_up = time.monotonic() + CONTROLLER_STOP_SECONDS
    while controller.pods(include_terminating=True) and time.monotonic() < given_up:
        time.sleep(1)
    for namespace in namespaces:
        try:
            pods = core.list_namespaced_pod(namespace, _request_timeout=10).items
        except kubernetes.client.ApiException:
            continue
        for pod in pods:
            with contextlib.suppress(kubernetes.client.ApiException):
                if pod.metadata.finalizers:
                    core.patch_namespaced_pod(
                        pod.metadata.name,
                        namespace,
                        {"metadata": {"finalizers": None}},
                        _request_timeout=10,
                    )
                core.delete_namespaced_pod(
                    pod.metadata.name, namespace, grace_period_seconds=0, _request_timeout=10
                )
    try:
        run_kubectl(
            kubeconfig, "delete", "-k", str(kustomization), "--ignore-not-found", "--wait=true"
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"uninstalling kubedag hangs:\n{leftovers(core, namespaces)}"
        ) from error


def leftovers(core: kubernetes.client.CoreV1Api, namespaces: set[str]) -> str:
    """What keeps the install's namespaces from going: their conditions and their pods."""
    lines = []
    for namespace in sorted(namespaces):
        try:
            status = core.read_namespace(namespace, _request_timeout=10).status
        except kubernetes.client.ApiException as error:
            lines.append(f"namespace {namespace}: {error.status}")
            continue
        lines.append(f"namespace {namespace}: {status.phase}")
        lines += [f"  {c.type}: {c.message}" for c in status.conditions or [] if c.status == "True"]
        for pod in core.list_namespaced_pod(namespace, _request_timeout=10).items:
            lines.append(
                f"  pod {pod.metadata.name}: {pod.status.phase}, finalizers "
                f"{pod.metadata.finalizers}, deleting since {pod.metadata.deletion_timestamp}"
            )
    return "\n".join(lines)


@pytest.fixture(scope="session")
def deployment(
    real_cluster: LocalCluster,
    real_kube: kubernetes.client.ApiClient,
    postgres_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    # One kubedag per cluster: sessions from other checkouts wait their turn here.
    with open(real_cluster.config.data_dir / "deployment.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _deploy(real_cluster, real_kube, postgres_server_url, tmp_path_factory)


def _deploy(
    real_cluster: LocalCluster,
    real_kube: kubernetes.client.ApiClient,
    postgres_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    # A running node keeps the images it imported: bring the controller's up to date.
    node = real_cluster.real_node
    assert node is not None
    node.load_images()
    root = tmp_path_factory.mktemp("realnode")
    repository = Repository(root)
    repository.add_samples()
    repository.commit("sample DAGs")
    git = GitServer(root=root, host=REAL_NODE_IP, token=GIT_TOKEN)
    server = make_url(postgres_server_url)
    database = f"kubedag_realnode_{uuid.uuid4().hex[:12]}"
    with closing(_admin_connection(server)) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{database}"')
    url = server.set(drivername="postgresql+psycopg2", database=database).render_as_string(
        hide_password=False
    )
    upgrade(url)
    store = Store.connect(url)
    core = kubernetes.client.CoreV1Api(real_kube)
    workers = worker_namespaces()[0]
    config = install_config(repo_url=git.url(repository.bare), dags_path="sample-dags")
    kustomization = write_kustomization(root / "install", config)
    kubeconfig = real_cluster.kubeconfig
    # A session killed before its teardown leaves its install behind: start clean.
    uninstall(core, kubeconfig, kustomization, namespaces={HOME, workers})
    for namespace in {HOME, workers}:
        ensure_namespace(core, namespace)
        put_secret(core, namespace, "kubedag-git", {"token": GIT_TOKEN})
    put_secret(core, HOME, "kubedag-database", {"url": url})
    put_secret(core, HOME, "kubedag-api-token", {"token": API_TOKEN})
    pods = ControllerPods(core)
    run_kubectl(kubeconfig, "apply", "-k", str(kustomization))
    try:
        wait_until(
            lambda: pods.ready_pod() is not None,
            timeout=120,
            what="the controller pod to be Ready",
            detail=pods.diagnosis,
        )
        yield Deployment(real_cluster, real_kube, repository, git, store, url, workers, pods)
    finally:
        uninstall(core, kubeconfig, kustomization, namespaces={HOME, workers})
        store.close()
        git.close()
        with closing(_admin_connection(server)) as admin, admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
