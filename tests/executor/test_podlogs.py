"""Reading and following worker pods' logs through the API, with the node agent's logs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from controller.executor.kubeclient import make_api_client
from controller.executor.observer import NullObserver
from controller.executor.podlogs import (
    ContainerLog,
    LineCursor,
    LogFollow,
    read_pod_logs,
    stamp_key,
)


def scripted_pod(name: str, *, log: str, duration: float = 0.0) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"kubedag.io/test": "logs"},
            "annotations": {
                "agent.kubedag.io/mode": "scripted",
                "agent.kubedag.io/log": log,
                "agent.kubedag.io/duration": str(duration),
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [
                {"name": "git-checkout", "image": "alpine/git", "command": ["true"]}
            ],
            "containers": [{"name": "task", "image": "busybox:1.36", "command": ["true"]}],
        },
    }


@pytest.fixture
def api(cluster: Any) -> Iterator[kubernetes.client.ApiClient]:
    with make_api_client(kubeconfig=str(cluster.kubeconfig)) as client:
        yield client


def wait_for_phase(
    core: kubernetes.client.CoreV1Api, namespace: str, name: str, phases: set[str]
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace, _request_timeout=10)
        if pod.status.phase in phases:
            return
        time.sleep(0.2)
    raise AssertionError(f"pod {name} did not reach {phases} in 60s")


@pytest.mark.cluster
def test_a_finished_pods_logs_are_read_back(
    api: kubernetes.client.ApiClient, namespace: str, node_agent: Any
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, scripted_pod("done", log="extracting\n3 rows\n"))
    wait_for_phase(core, namespace, "done", {"Succeeded"})
    init, main = read_pod_logs(api, namespace=namespace, pod="done")
    assert (init.container, init.error) == ("git-checkout", None)
    assert main == ContainerLog(container="task", text="extracting\n3 rows\n")


@pytest.mark.cluster
def test_a_log_longer_than_the_limit_is_cut_and_says_so(
    api: kubernetes.client.ApiClient, namespace: str, node_agent: Any
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, scripted_pod("chatty", log="x" * 5000 + "\n"))
    wait_for_phase(core, namespace, "chatty", {"Succeeded"})
    [main] = read_pod_logs(
        api, namespace=namespace, pod="chatty", containers=["task"], limit_bytes=1000
    )
    assert (len(main.text), main.truncated) == (1000, True)


@pytest.mark.cluster
def test_following_yields_lines_until_the_container_ends(
    api: kubernetes.client.ApiClient, namespace: str, node_agent: Any
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(
        namespace, scripted_pod("live", log="one\ntwo\nthree\n", duration=2.0)
    )
    follow = LogFollow(api, namespace=namespace, pod="live", idle_timeout=10)
    started = time.monotonic()
    lines = list(follow)
    assert lines == ["one", "two", "three"]
    assert time.monotonic() - started < 30


class ErrorsSeen(NullObserver):
    def __init__(self) -> None:
        self.statuses: list[int | None] = []
        self.not_found = threading.Event()

    def api_error(self, status: int | None) -> None:
        self.statuses.append(status)
        if status == 404:
            self.not_found.set()


@pytest.mark.cluster
def test_following_waits_for_a_node_that_has_not_started_the_pod_yet(
    api: kubernetes.client.ApiClient, namespace: str, node_agent: Any
) -> None:
    """A pod bound to a node whose kubelet has not learned of it yet: its log is "not found"
    there, though the pod exists; the follow must wait, not report the pod gone."""
    core = kubernetes.client.CoreV1Api(api)
    node = f"unstarted-{namespace}"
    served = core.read_node(node_agent.nodes[0], _request_timeout=10).status
    # Tainted, so that no other pod is scheduled there once the agent adopts it.
    taint = {"key": "kubedag.io/spare", "value": node, "effect": "NoSchedule"}
    core.create_node({"metadata": {"name": node}, "spec": {"taints": [taint]}}, _request_timeout=10)
    try:
        # The node's address is the agent's, but the agent does not serve it yet.
        address = [a for a in served.addresses if a.type == "InternalIP"]
        core.patch_node_status(
            node,
            {"status": {"addresses": address, "daemonEndpoints": served.daemon_endpoints}},
            _request_timeout=10,
        )
        body = scripted_pod("waiting", log="one\ntwo\n", duration=1.0)
        body["spec"]["nodeName"] = node
        core.create_namespaced_pod(namespace, body, _request_timeout=10)
        with pytest.raises(kubernetes.client.ApiException) as direct:
            core.read_namespaced_pod_log("waiting", namespace, container="task")
        assert direct.value.status == 404
        seen = ErrorsSeen()
        follow = LogFollow(api, namespace=namespace, pod="waiting", idle_timeout=10, observer=seen)
        lines: list[str] = []
        failures: list[BaseException] = []

        def read() -> None:
            try:
                lines.extend(follow)
            except BaseException as error:
                failures.append(error)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            assert seen.not_found.wait(30), f"the follow met no 404: {seen.statuses}"
            node_agent.adopt_node(node)
            reader.join(60)
            ended = not reader.is_alive()
        finally:
            follow.stop()
            reader.join(10)
        assert ended, f"the follow did not end within 60s of the node's adoption: {lines}"
        assert not failures, failures
        assert lines == ["one", "two"]
    finally:
        node_agent.remove_node(node)


@pytest.mark.cluster
def test_a_pod_not_yet_on_a_node_has_empty_logs_and_a_missing_container_says_why(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    body = scripted_pod("stuck", log="")
    body["spec"]["nodeSelector"] = {"kubedag.io/no-such-pool": "x"}
    kubernetes.client.CoreV1Api(api).create_namespaced_pod(namespace, body)
    main, missing = read_pod_logs(
        api, namespace=namespace, pod="stuck", containers=["task", "nope"]
    )
    assert main == ContainerLog(container="task", text="")
    assert missing.text == ""
    assert missing.error == "container nope is not valid for pod stuck"


def test_timestamps_with_trimmed_fractions_sort_by_time() -> None:
    stamps = [
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00.05Z",
        "2026-03-01T12:00:00.123456789Z",
        "2026-03-01T12:00:00.9Z",
        "2026-03-01T12:00:01.000000001Z",
    ]
    keys = [stamp_key(s) for s in stamps]
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert stamps != sorted(stamps)


def test_a_line_without_a_timestamp_has_no_key() -> None:
    assert stamp_key("hello") is None


def test_a_resumed_stream_yields_each_line_once_even_with_shared_timestamps() -> None:
    first = ["2026-03-01T12:00:00.5Z a", "2026-03-01T12:00:01Z b", "2026-03-01T12:00:01Z c"]
    # The reconnect asks from a whole second back, so it replays everything from :00.
    again = [*first, "2026-03-01T12:00:01Z d", "2026-03-01T12:00:02Z e"]
    cursor = LineCursor()
    cursor.begin_stream()
    seen = [cursor.admit(line) for line in first]
    cursor.begin_stream()
    seen += [cursor.admit(line) for line in again]
    assert [line for line in seen if line is not None] == ["a", "b", "c", "d", "e"]
