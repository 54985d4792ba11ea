"""Crash tests' tools: the controller as a process to SIGKILL, and an audit of every pod made."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import kubernetes.client

from controller.executor.watchstream import PodWatch, WatchExpiredError, list_pods

ROOT = Path(__file__).resolve().parents[2]
SELECTOR = "kubedag.io/managed-by=kubedag"


class PodAudit:
    """Every uid ever seen per pod name, from lists and a watch that survives 410."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self._api = api
        self.namespace = namespace
        self.uids: defaultdict[str, set[str]] = defaultdict(set)
        self.specs: dict[str, dict[str, Any]] = {}
        """The latest spec seen of each pod (pods are deleted once they succeed)."""
        self._stopped = threading.Event()
        self._watch: PodWatch | None = None
        self._version = self._relist()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _relist(self) -> str:
        pods, version = list_pods(self._api, namespace=self.namespace, label_selector=SELECTOR)
        for pod in pods:
            self._see(pod)
        return version

    def _see(self, pod: dict[str, Any]) -> None:
        self.uids[pod["metadata"]["name"]].add(pod["metadata"]["uid"])
        self.specs[pod["metadata"]["name"]] = pod["spec"]

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._watch = PodWatch(
                self._api,
                namespace=self.namespace,
                label_selector=SELECTOR,
                resource_version=self._version,
            )
            try:
                for event in self._watch:
                    if event.pod is not None:
                        self._see(event.pod)
                    self._version = event.resource_version
            except WatchExpiredError:
                self._version = self._relist()
            except Exception:
                time.sleep(0.5)

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(10)


def start_controller(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.controller_process"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
