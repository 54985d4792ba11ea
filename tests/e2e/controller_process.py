"""A controller process for crash tests: engine and Kubernetes executor until no run is left.

Run as ``python -m tests.e2e.controller_process`` with KUBEDAG_CONFIG,
KUBEDAG_DATABASE_URL and KUBECONFIG set; the tests SIGKILL it mid-run and start it again,
as a crashed and restarted controller. With KUBEDAG_TEST_UNTIL_PODS_GONE set it also
waits until no managed pod is left (a stopped pod's finalizer is removed only by it).
"""

from __future__ import annotations

import logging
import os
import sys
import time

from controller.base.states import DagRunState
from controller.executor.kubeclient import make_api_client
from controller.executor.kubernetes import KubernetesExecutor, settings_from_config
from controller.executor.watchstream import list_pods
from controller.logstore import LogStore
from controller.runtime.engine import Engine
from controller.settings.loading import load_config
from controller.store import Store

DEADLINE_SECONDS = 120.0


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = load_config()
    store = Store.connect(str(config.database_url))
    settings = settings_from_config(config, repo_url="file:///unused", dags_path="")
    api = make_api_client(kubeconfig=config.kubeconfig, pool_maxsize=max(32, settings.workers))
    executor = KubernetesExecutor(
        api, store, settings=settings, log_store=LogStore(config.log_store_location)
    )
    engine = Engine(store, executor, parallelism=config.executor.parallelism)
    engine.start()
    print("started", flush=True)
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while time.monotonic() < deadline:
            with store.transaction() as uow:
                open_runs = uow.list_runs(states=[DagRunState.QUEUED, DagRunState.RUNNING])
            pods_left = False
            if os.environ.get("KUBEDAG_TEST_UNTIL_PODS_GONE"):
                pods, _ = list_pods(
                    api, namespace=settings.pod.namespace, label_selector=settings.label_selector
                )
                pods_left = bool(pods)
            if not open_runs and not pods_left and executor.results_stored():
                watcher = executor.watchers[0].stats
                print(f"done expired={watcher.expired}", flush=True)
                return 0
            time.sleep(0.2)
        return 1
    finally:
        engine.stop()


if __name__ == "__main__":
    sys.exit(main())
