"""Bounded polling with backoff, for "wait until the cluster answers".

Every wait has a deadline and ends with an error that says what was awaited and shows
the component's last log lines, because "timed out" alone sends users hunting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kubernetes.client

from controller.base.backoff import Backoff

# Polls start fast (a component often answers within 100 ms) and slow to a second.
POLL_BACKOFF = Backoff(base=0.06, factor=1.5, cap=1.2, max_attempts=None, max_elapsed=None)


class ClusterError(RuntimeError):
    """The local cluster could not be started, reached or changed."""


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    detail: Callable[[], str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        polls += 1
        time.sleep(POLL_BACKOFF.delay(polls))


def admits_pods(
    core: kubernetes.client.CoreV1Api, namespace: str, *, service_account: str = "default"
) -> bool:
    """Whether the API server admits a pod running as `service_account` in `namespace` now.

    Asked with a dry-run create, which passes admission and stores nothing. A new
    namespace's account shows its token Secret a moment before the ServiceAccount admission,
    which reads a cache of its own, finds it: until then a create is refused with a 500
    ("No API token found ..., retry after the token is automatically created"), and with a
    403 while the account itself is missing. So "the account has a token" is not enough.
    """
    probe: Any = {
        "metadata": {"name": "kubedag-admission-probe"},
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{"name": "probe", "image": "probe"}],
        },
    }
    try:
        core.create_namespaced_pod(namespace, probe, dry_run="All", _request_timeout=5)
    except kubernetes.client.ApiException as error:
        if error.status == 500 or (error.status == 403 and "service account" in str(error.body)):
            return False
        raise
    return True
