"""The node agent's status writer: a refused write does not hold up the pods behind it."""

from __future__ import annotations

import threading
from typing import Any

from controller.nodeagent.podstate import PodRecord
from controller.nodeagent.rawapi import ApiError
from controller.nodeagent.writer import StatusWriter


class RefusingApi:
    """Answers status writes as an apiserver would: one pod's status is refused for good."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.attempts: dict[str, int] = {}
        self.written = threading.Event()

    def patch_status(self, *, namespace: str, name: str, status: Any) -> None:
        self.attempts[name] = self.attempts.get(name, 0) + 1
        if name == self.refused:
            raise ApiError(422, "may not be transitioned to non-terminated state")
        self.written.set()

    def delete_pod(self, *, namespace: str, name: str, uid: str) -> None:
        raise AssertionError("no pod here is being deleted")


def record(name: str) -> PodRecord:
    pod = {
        "metadata": {"uid": f"uid-{name}", "namespace": "ns", "name": name},
        "spec": {"nodeName": "node-0", "containers": [{"name": "task", "image": "busybox"}]},
    }
    return PodRecord.from_pod(pod, mode="scripted")


def test_a_refused_status_is_not_retried_and_the_next_pod_is_written_at_once() -> None:
    api = RefusingApi(refused="bad")
    writer = StatusWriter(api=api, host_ip="127.0.0.1", shards=1)  # type: ignore[arg-type]
    writer.start()
    try:
        writer.mark(record("bad"))
        writer.mark(record("good"))
        assert api.written.wait(timeout=5), "the pod behind a refused write was not written"
    finally:
        writer.stop()
    assert api.attempts == {"bad": 1, "good": 1}
