"""RBAC is enforced, and kubectl works against the local cluster."""

from __future__ import annotations

import subprocess

import kubernetes.client
import pytest

from controller.devcluster.layout import kubernetes_bin_dir
from controller.devcluster.pki import TEST_USERS
from tests.cluster.pods import finished, process_pod, scripted_pod, wait_pod
from tests.fixtures.access import wait_authorized

pytestmark = pytest.mark.cluster


def test_token_bound_to_a_role_without_create_pods_is_refused_403(kube, local_cluster, namespace):
    user = TEST_USERS[0]
    rbac = kubernetes.client.RbacAuthorizationV1Api(kube)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "read-pods"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "read-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-pods",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    wait_authorized(kube, user=user, namespace=namespace, verb="list", resource="pods")
    with local_cluster.api_client(user=user) as api:
        core = kubernetes.client.CoreV1Api(api)
        assert core.list_namespaced_pod(namespace).items == []
        with pytest.raises(kubernetes.client.ApiException) as refused:
            core.create_namespaced_pod(namespace, scripted_pod("nope"))
    assert refused.value.status == 403


def _kubectl(kubeconfig, *args: str) -> str:
    return subprocess.run(
        [str(kubernetes_bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


def test_kubectl_lists_nodes_and_pods_and_shows_real_logs(kube, cluster, node_agent, namespace):
    core = kubernetes.client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, process_pod("hello", command=["echo", "hello, kubectl"]))
    wait_pod(core, namespace, "hello", finished)
    listing = _kubectl(cluster.kubeconfig, "get", "nodes,pods", "-A")
    assert "node/kubedag-node-0" in listing
    assert namespace in listing
    assert "pod/hello" in listing
    assert _kubectl(cluster.kubeconfig, "logs", "-n", namespace, "hello") == "hello, kubectl\n"
