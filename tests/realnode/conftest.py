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
from tests.realnode.deployment import (
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
    """`kubectl delete -k`, after freeing worker pods whose controller is going away: they
    keep kubedag's finalizer until a controller stores their result."""
    for namespace in namespaces:
        try:
            pods = core.list_namespaced_pod(namespace, _request_timeout=10).items
        except kubernetes.client.ApiException:
            continue
        for pod in pods:
            if pod.metadata.finalizers:
                with contextlib.suppress(kubernetes.client.ApiException):
                    core.patch_namespaced_pod(
                        pod.metadata.name,
                        namespace,
                        {"metadata": {"finalizers": None}},
                        _request_timeout=10,
                    )
    run_kubectl(kubeconfig, "delete", "-k", str(kustomization), "--ignore-not-found", "--wait=true")


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
