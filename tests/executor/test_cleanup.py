"""The pod cleaner: it yields to launches within a bound, trusts watched pods safely, and
keeps a stored log when a late copy of a pod already gone comes back."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from controller.base.states import TaskState
from controller.base.tries import TryKey
from controller.devcluster.readiness import wait_until
from controller.executor.cleanup import CleanupPolicy, PodCleaner
from controller.executor.gitcheckout import CONTAINER_NAME as INIT_CONTAINER
from controller.executor.podspec import RESULT_FINALIZER, TASK_CONTAINER
from controller.logstore import LogKey, LogStore
from controller.store import TaskInstanceRecord

OTHER_FINALIZER = "example.com/keep"


def record(pod_name: str, *, state: TaskState = TaskState.SUCCEEDED) -> TaskInstanceRecord:
    now = datetime.now(UTC)
    return TaskInstanceRecord(
        id=1,
        run_id=1,
        dag_name="d",
        task_name="t",
        item_index=0,
        item=None,
        try_number=1,
        state=state,
        failure_kind=None,
        pod_name=pod_name,
        namespace=None,
        node=None,
        exit_code=0,
        reason=None,
        message=None,
        result=None,
        not_before=None,
        created_at=now,
        launched_at=now,
        started_at=now,
        finished_at=now,
        updated_at=now,
    )


def finished_pod(name: str, *, namespace: str = "ns") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "finalizers": [RESULT_FINALIZER],
        },
        "status": {"phase": "Succeeded"},
    }


class ConcurrencyProbe:
    """Stands in for the log copy: counts cleanups running at once, holds them until told."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.release = threading.Event()

    def store_logs(self, **_: Any) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.release.wait(10)
        with self.lock:
            self.running -= 1


def wait_for_running(probe: ConcurrencyProbe, count: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with probe.lock:
            if probe.running >= count:
                return
        time.sleep(0.01)
    raise AssertionError(f"{count} cleanups never ran at once (running: {probe.running})")


class QueuedLaunches:
    """Stands in for the launcher's queue: says whether creates are waiting, and which
    cleanup workers asked, so a test can see every worker hold back."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.waiting.set()
        self._asked: dict[int, int] = {}
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            ident = threading.get_ident()
            self._asked[ident] = self._asked.get(ident, 0) + 1
        return self.waiting.is_set()

    def held_back(self, workers: int) -> bool:
        """`workers` threads each asked again after being told launches wait: each is
        still waiting for its turn, none has started cleaning."""
        with self._lock:
            return sum(count >= 2 for count in self._asked.values()) >= workers


def cleaner_with_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, launches: QueuedLaunches, deferral: float
) -> tuple[PodCleaner, ConcurrencyProbe]:
    cleaner = PodCleaner(
        kubernetes.client.ApiClient(),
        LogStore(str(tmp_path)),
        policy=CleanupPolicy(delete_on_success=False),
        workers=4,
        launches_waiting=launches,
        max_deferral=deferral,
    )
    probe = ConcurrencyProbe()
    monkeypatch.setattr(cleaner, "_store_logs", probe.store_logs)
    monkeypatch.setattr(cleaner, "_remove_finalizer", lambda *_, **__: None)
    return cleaner, probe


def wait_idle(cleaner: PodCleaner) -> None:
    deadline = time.monotonic() + 30
    while not cleaner.idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cleaner.idle()


def test_cleanup_waits_while_launches_are_queued_and_runs_once_they_are_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launches = QueuedLaunches()
    cleaner, probe = cleaner_with_probe(tmp_path, monkeypatch, launches=launches, deferral=60.0)
    probe.release.set()
    try:
        for index in range(4):
            assert cleaner.submit(finished_pod(f"p{index}"), record(f"p{index}"))
        wait_until(lambda: launches.held_back(4), timeout=5, what="every worker to hold back")
        assert probe.peak == 0, "cleanup must yield to queued launches"
        launches.waiting.clear()
        wait_idle(cleaner)
        assert cleaner.cleaned == 4
    finally:
        cleaner.close(wait=True)


def test_cleanup_defers_no_longer_than_its_bound_under_endless_launches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launches = QueuedLaunches()
    cleaner, probe = cleaner_with_probe(tmp_path, monkeypatch, launches=launches, deferral=0.2)
    try:
        for index in range(4):
            assert cleaner.submit(finished_pod(f"p{index}"), record(f"p{index}"))
        wait_for_running(probe, 4)
        probe.release.set()
        wait_idle(cleaner)
        assert cleaner.cleaned == 4
    finally:
        probe.release.set()
        cleaner.close(wait=True)


@pytest.mark.cluster
def test_a_stale_watched_copy_removes_only_the_result_finalizer(
    kube: kubernetes.client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = kubernetes.client.CoreV1Api(kube)
    body = {
        "metadata": {"name": "stale", "finalizers": [OTHER_FINALIZER, RESULT_FINALIZER]},
        "spec": {
            # No such node: nothing runs the pod, it stays as created.
            "nodeName": "no-such-node",
            "containers": [{"name": "task", "image": "busybox:1.36"}],
        },
    }
    created = core.create_namespaced_pod(namespace, body, _request_timeout=10)
    # The copy a watch delivered before the other finalizer was added in front.
    stale = finished_pod("stale", namespace=namespace)
    stale["metadata"]["uid"] = created.metadata.uid
    stale["status"] = {"phase": "Failed"}
    cleaner = PodCleaner(kube, LogStore(str(tmp_path)), policy=CleanupPolicy())
    try:
        assert cleaner.submit(stale, record("stale", state=TaskState.FAILED))
        deadline = time.monotonic() + 30
        while not cleaner.idle() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cleaner.cleaned == 1
        pod = core.read_namespaced_pod("stale", namespace, _request_timeout=10)
        assert pod.metadata.finalizers == [OTHER_FINALIZER]
    finally:
        cleaner.close(wait=True)
        core.patch_namespaced_pod(
            "stale",
            namespace,
            [{"op": "remove", "path": "/metadata/finalizers"}],
            _request_timeout=10,
        )


@pytest.mark.cluster
def test_a_late_copy_of_a_pod_already_gone_keeps_the_log_stored_for_it(
    kube: kubernetes.client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    # The pod was cleaned (log stored, finalizer removed) and is gone; a watch event, or a
    # restarted controller's replay, still carries a copy taken while it had its finalizer.
    logs = LogStore(str(tmp_path))
    kept = LogKey(TryKey(1, "t", 0, 1), TASK_CONTAINER)
    logs.write(kept, "started 1\n")
    cleaner = PodCleaner(kube, logs, policy=CleanupPolicy())
    try:
        late = finished_pod("gone", namespace=namespace)
        assert cleaner.submit(late, record("gone", state=TaskState.CANCELLED))
        wait_idle(cleaner)
        assert (cleaner.cleaned, cleaner.failures) == (1, 0)
    finally:
        cleaner.close(wait=True)
    assert logs.read(kept) == "started 1\n"
    # A container with nothing stored still gets the reason it has no log.
    never = LogKey(TryKey(1, "t", 0, 1), INIT_CONTAINER)
    assert logs.read(never) == '[kubedag: no log: pods "gone" not found]\n'
