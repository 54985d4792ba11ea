"""A test's own record of every pod a namespace ever held, which fails loudly if it dies.

Tests that prove "no pod was created twice" or "no pod ever showed a secret" stand on
this record: a watch that silently stopped would make them pass while seeing nothing.
So the watch resumes from its last version, lists again on 410 (as the controller's
does), and any other error ends it and is raised by `stop()`, failing the test.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import kubernetes.client

from controller.executor.watchstream import PodWatch, WatchExpiredError, list_pods


class PodAudit:
    """Every uid seen per pod name, and every version of every pod, from lists and a
    watch that survives 410."""

    def __init__(
        self, api: kubernetes.client.ApiClient, namespace: str, *, label_selector: str = ""
    ) -> None:
        self._api = api
        self.namespace = namespace
        self._selector = label_selector
        self.uids: defaultdict[str, set[str]] = defaultdict(set)
        self.seen: list[dict[str, Any]] = []
        self.specs: dict[str, dict[str, Any]] = {}
        """The latest spec seen of each pod (pods are deleted once they succeed)."""
        self._lock = threading.Lock()
        self._seen_more = threading.Condition(self._lock)
        self._stopped = threading.Event()
        self._watch: PodWatch | None = None
        self._error: BaseException | None = None
        self._ended = False
        self._version = self._relist()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _relist(self) -> str:
        pods, version = list_pods(
            self._api, namespace=self.namespace, label_selector=self._selector
        )
        for pod in pods:
            self._see(pod)
        return version

    def _see(self, pod: dict[str, Any]) -> None:
        with self._lock:
            self.uids[pod["metadata"]["name"]].add(pod["metadata"]["uid"])
            self.seen.append(pod)
            self.specs[pod["metadata"]["name"]] = pod["spec"]
            self._seen_more.notify_all()

    def _run(self) -> None:
        try:
            while True:
                # Under the lock: a watch made after stop() read `_watch` would run on.
                with self._lock:
                    if self._stopped.is_set():
                        return
                    watch = self._watch = PodWatch(
                        self._api,
                        namespace=self.namespace,
                        label_selector=self._selector,
                        resource_version=self._version,
                    )
                try:
                    for event in watch:
                        if event.pod is not None:
                            self._see(event.pod)
                        self._version = event.resource_version
                except WatchExpiredError:
                    self._version = self._relist()
        except BaseException as error:
            if not self._stopped.is_set():
                self._error = error
        finally:
            with self._lock:
                self._ended = True
                self._seen_more.notify_all()

    def wait_seen(self, names: Iterable[str], *, timeout: float = 30.0) -> None:
        """Wait until the record holds every named pod: this watch runs apart from the
        controller's and may still be behind it when the controller is done."""
        wanted = set(names)
        with self._lock:
            caught_up = self._seen_more.wait_for(
                lambda: wanted <= self.uids.keys() or self._ended, timeout
            )
            missing = sorted(wanted - self.uids.keys())
        if missing:
            state = "ended" if caught_up else f"did not see them within {timeout:.0f}s"
            raise AssertionError(f"the test's pod watch {state}; missing pods: {missing[:10]}")

    def stop(self) -> None:
        """End the watch; raise if it died before, so the test's record is incomplete."""
        with self._lock:
            self._stopped.set()
            watch = self._watch
        if watch is not None:
            watch.stop()
        self._thread.join(10)
        if self._thread.is_alive():
            raise AssertionError("the test's pod watch did not stop within 10s")
        if self._error is not None:
            raise AssertionError(
                f"the test's pod watch of {self.namespace} died: {self._error!r}"
            ) from self._error
