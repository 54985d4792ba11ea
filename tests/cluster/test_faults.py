"""Fault injection: 410 Gone after compaction, apiserver restarts, lost nodes.

These restart the shared test apiserver, so other tests running against the same
cluster at that moment see a few seconds of refused connections, as they would in a
real outage.
"""

from __future__ import annotations

import time
import uuid

import kubernetes.client
import kubernetes.watch
import pytest

from tests.cluster.pods import finished, pod_exists, scripted_pod, wait_pod

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]


def _create_configmap(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> str:
    made = core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
    return made.metadata.resource_version


def test_watch_from_a_compacted_resource_version_is_answered_410(local_cluster, namespace):
    local_cluster.use_watch_cache(False)
    with local_cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        old = _create_configmap(core, namespace, "before")
        # Compaction keeps the revision it names; the watch from `old` starts at
        # old+1, so two later writes put that start behind the compaction.
        _create_configmap(core, namespace, "after-1")
        _create_configmap(core, namespace, "after-2")
        assert local_cluster.compact_etcd() > int(old)
        stream = kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=old,
            timeout_seconds=5,
        )
        with pytest.raises(kubernetes.client.ApiException) as gone:
            for _ in stream:
                pass
        assert gone.value.status == 410


def test_pod_finishes_across_an_apiserver_restart(local_cluster, namespace):
    with local_cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        core.create_namespaced_pod(namespace, scripted_pod("survivor", duration="2"))
        wait_pod(core, namespace, "survivor", lambda p: p.status.phase == "Running")
        cache = bool(local_cluster.watch_cache_enabled())
        local_cluster.stop_apiserver()
        time.sleep(2.5)  # the pod ends while nobody can be told
        local_cluster.start_apiserver(watch_cache=cache)
    with local_cluster.api_client() as api:
        pod = wait_pod(kubernetes.client.CoreV1Api(api), namespace, "survivor", finished)
    assert pod.status.phase == "Succeeded"


@pytest.fixture
def spare_node(node_agent):
    """A node of its own, tainted so that only this test's pods land on it."""
    name = f"spare-{uuid.uuid4().hex[:6]}"
    node_agent.add_node(
        name, taints=[{"key": "kubedag.io/spare", "value": name, "effect": "NoSchedule"}]
    )
    yield name
    node_agent.remove_node(name)


def _pinned(name: str, node: str) -> dict:
    pod = scripted_pod(name, duration="60")
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    pod["spec"]["tolerations"] = [{"key": "kubedag.io/spare", "operator": "Exists"}]
    return pod


@pytest.mark.parametrize(("outcome", "phase"), [("failed", "Failed"), ("unknown", "Unknown")])
def test_lost_node_turns_its_pods_failed_or_unknown(
    kube, node_agent, spare_node, namespace, outcome, phase
):
    core = kubernetes.client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pinned("victim", spare_node))
    wait_pod(core, namespace, "victim", lambda p: p.status.phase == "Running")
    node_agent.lose_node(spare_node, outcome=outcome)
    pod = wait_pod(core, namespace, "victim", lambda p: p.status.phase == phase)
    assert pod.status.reason == "NodeLost"


def test_a_pod_bound_before_its_node_is_adopted_runs_once_it_is(kube, node_agent, namespace):
    core = kubernetes.client.CoreV1Api(kube)
    node = f"late-{uuid.uuid4().hex[:6]}"
    # Tainted, like spare_node, so that only this test's pod runs there.
    taint = {"key": "kubedag.io/spare", "value": node, "effect": "NoSchedule"}
    core.create_node({"metadata": {"name": node}, "spec": {"taints": [taint]}})
    try:
        pod = scripted_pod("early", duration="0")
        pod["spec"]["nodeName"] = node
        core.create_namespaced_pod(namespace, pod)
        node_agent.adopt_node(node)
        done = wait_pod(core, namespace, "early", finished)
        assert done.status.phase == "Succeeded"
    finally:
        node_agent.remove_node(node)


def test_vanished_node_takes_its_pods_with_it(kube, node_agent, spare_node, namespace):
    core = kubernetes.client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pinned("gone", spare_node))
    wait_pod(core, namespace, "gone", lambda p: p.status.phase == "Running")
    node_agent.lose_node(spare_node, outcome="vanish")
    assert not pod_exists(core, namespace, "gone")
