"""The resumable pod watch against the real API server, including 410 after compaction."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from controller.executor.kubeclient import make_api_client
from controller.executor.watchstream import (
    PodWatch,
    WatchEvent,
    WatchExpiredError,
    list_pods,
    parse_event,
)
from tests.fixtures.cluster import without_watch_cache

SELECTOR = "kubedag.io/test=watch"


def pod_body(name: str, *, labelled: bool = True) -> dict[str, Any]:
    """A pod only the test changes: bound to no real node, so neither the scheduler nor
    a node agent writes to it, and a watch sees exactly the test's own writes."""
    labels = {"kubedag.io/test": "watch" if labelled else "other"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "nodeName": "kubedag-no-such-node",
            "containers": [{"name": "task", "image": "busybox:1.36", "command": ["true"]}],
        },
    }


@pytest.fixture
def api(cluster: Any) -> Iterator[kubernetes.client.ApiClient]:
    with make_api_client(kubeconfig=str(cluster.kubeconfig)) as client:
        yield client


class Collector:
    """Runs a PodWatch on a thread and hands its events (or its error) to the test."""

    def __init__(self, watch: PodWatch) -> None:
        self.watch = watch
        self.events: queue.Queue[WatchEvent | BaseException] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.watch:
                self.events.put(event)
        except BaseException as error:
            self.events.put(error)

    def pod_events(self, count: int, *, timeout: float = 20) -> list[tuple[str, str]]:
        """The next ``count`` (type, pod name) pairs, skipping bookmarks."""
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while len(seen) < count:
            item = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(item, BaseException):
                raise item
            if item.pod is not None:
                seen.append((item.type, item.pod["metadata"]["name"]))
        return seen

    def until(self, last: tuple[str, str], *, timeout: float = 20) -> list[tuple[str, str]]:
        """All (type, pod name) pairs up to and including ``last``."""
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while not seen or seen[-1] != last:
            seen.extend(self.pod_events(1, timeout=max(0.01, deadline - time.monotonic())))
        return seen

    def stop(self) -> None:
        self.watch.stop()
        self.thread.join(timeout=10)


def delete_now(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> None:
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _request_timeout=10)


@pytest.mark.cluster
def test_watch_reports_added_modified_deleted_for_labelled_pods_only(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    _, version = list_pods(api, namespace=namespace, label_selector=SELECTOR)
    watch = Collector(
        PodWatch(api, namespace=namespace, label_selector=SELECTOR, resource_version=version)
    )
    try:
        core.create_namespaced_pod(namespace, pod_body("other", labelled=False))
        core.create_namespaced_pod(namespace, pod_body("mine"))
        core.patch_namespaced_pod("mine", namespace, {"metadata": {"annotations": {"seen": "yes"}}})
        delete_now(core, namespace, "other")
        delete_now(core, namespace, "mine")
        events = watch.until(("DELETED", "mine"))
    finally:
        watch.stop()
    assert events[0] == ("ADDED", "mine")
    assert set(events[1:-1]) == {("MODIFIED", "mine")}
    assert not watch.thread.is_alive()


@pytest.mark.cluster
def test_watch_resumed_from_a_stored_version_misses_nothing_from_while_it_was_stopped(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    _, version = list_pods(api, namespace=namespace, label_selector=SELECTOR)
    first = Collector(
        PodWatch(api, namespace=namespace, label_selector=SELECTOR, resource_version=version)
    )
    core.create_namespaced_pod(namespace, pod_body("before"))
    assert first.pod_events(1) == [("ADDED", "before")]
    first.stop()
    stored = first.watch.resource_version

    core.create_namespaced_pod(namespace, pod_body("while-a"))
    core.create_namespaced_pod(namespace, pod_body("while-b"))
    delete_now(core, namespace, "before")

    resumed = Collector(
        PodWatch(api, namespace=namespace, label_selector=SELECTOR, resource_version=stored)
    )
    try:
        events = resumed.until(("DELETED", "before"))
    finally:
        resumed.stop()
    assert [e for e in events if e[0] != "MODIFIED"] == [
        ("ADDED", "while-a"),
        ("ADDED", "while-b"),
        ("DELETED", "before"),
    ]


@pytest.mark.cluster
def test_stop_ends_an_idle_watch_promptly(api: kubernetes.client.ApiClient, namespace: str) -> None:
    _, version = list_pods(api, namespace=namespace, label_selector=SELECTOR)
    watch = Collector(
        PodWatch(api, namespace=namespace, label_selector=SELECTOR, resource_version=version)
    )
    # Once a pod's event has arrived, the watch is streaming and waits for the next.
    kubernetes.client.CoreV1Api(api).create_namespaced_pod(namespace, pod_body("first"))
    assert watch.pod_events(1) == [("ADDED", "first")]
    started = time.monotonic()
    watch.stop()
    assert not watch.thread.is_alive()
    assert time.monotonic() - started < 2


@pytest.mark.cluster
def test_list_pages_through_every_matching_pod(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    for i in range(7):
        core.create_namespaced_pod(namespace, pod_body(f"p-{i}"))
    core.create_namespaced_pod(namespace, pod_body("unrelated", labelled=False))
    pods, version = list_pods(api, namespace=namespace, label_selector=SELECTOR, page_size=3)
    assert sorted(p["metadata"]["name"] for p in pods) == [f"p-{i}" for i in range(7)]
    assert int(version) > 0


@pytest.mark.cluster
def test_a_compacted_cursor_signals_expiry_and_the_relist_resumes(
    local_cluster: Any, namespace: str
) -> None:
    # Only without the watch cache does the apiserver read history from etcd, where
    # compaction erased it; with the cache, recent history would still be served.
    with (
        without_watch_cache(local_cluster),
        make_api_client(kubeconfig=str(local_cluster.kubeconfig)) as api,
    ):
        core = kubernetes.client.CoreV1Api(api)
        _, old = list_pods(api, namespace=namespace, label_selector=SELECTOR)
        # Two writes: a watch from `old` starts at old+1, which must fall below the
        # compaction point for its history to be gone.
        core.create_namespaced_pod(namespace, pod_body("after-cursor"))
        core.patch_namespaced_pod("after-cursor", namespace, {"metadata": {"labels": {"x": "1"}}})
        local_cluster.compact_etcd()

        expired = PodWatch(api, namespace=namespace, label_selector=SELECTOR, resource_version=old)
        with pytest.raises(WatchExpiredError):
            next(iter(expired))

        pods, fresh = list_pods(api, namespace=namespace, label_selector=SELECTOR)
        assert [p["metadata"]["name"] for p in pods] == ["after-cursor"]
        resumed = Collector(
            PodWatch(api, namespace=namespace, label_selector=SELECTOR, resource_version=fresh)
        )
        try:
            core.create_namespaced_pod(namespace, pod_body("after-relist"))
            assert resumed.pod_events(1) == [("ADDED", "after-relist")]
        finally:
            resumed.stop()


def test_bookmark_advances_the_version_without_a_pod() -> None:
    raw = {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "9"}}}
    assert parse_event(raw) == WatchEvent(type="BOOKMARK", pod=None, resource_version="9")


def test_pod_events_carry_the_pod_as_a_dict() -> None:
    obj = {"metadata": {"name": "p", "resourceVersion": "12"}, "status": {"phase": "Running"}}
    assert parse_event({"type": "MODIFIED", "object": obj}) == WatchEvent(
        type="MODIFIED", pod=obj, resource_version="12"
    )


def test_an_error_event_with_code_410_signals_expiry() -> None:
    raw = {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "status": "Failure",
            "message": "too old resource version: 5 (10)",
            "reason": "Expired",
            "code": 410,
        },
    }
    with pytest.raises(WatchExpiredError, match="too old resource version"):
        parse_event(raw)


def test_other_error_events_are_api_errors() -> None:
    raw = {"type": "ERROR", "object": {"kind": "Status", "message": "etcd down", "code": 500}}
    with pytest.raises(kubernetes.client.ApiException) as caught:
        parse_event(raw)
    assert caught.value.status == 500


def test_a_watch_needs_a_version_to_start_from() -> None:
    configuration = kubernetes.client.Configuration(host="http://127.0.0.1:1")
    with (
        make_api_client(configuration=configuration) as api,
        pytest.raises(ValueError, match="list first"),
    ):
        PodWatch(api, namespace="ns", label_selector=SELECTOR, resource_version="")
