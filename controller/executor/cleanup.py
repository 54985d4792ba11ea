"""Letting finished worker pods go: keep their logs, release the finalizer, delete by policy.

Every worker pod carries the ``kubedag.io/result`` finalizer, so a pod deleted by anyone
(a user, a namespace cleanup, the node going away) lingers until kubedag has committed
its result and copied its logs. Only then is the finalizer removed, and the pod deleted
when the policy says so (``deleteOnSuccess``, ``deleteOnFailure``, after a TTL).

The order is the point: result committed (the caller's job, before submitting), logs
stored, finalizer removed, pod deleted. A crash anywhere in between leaves the
finalizer on, and the reconciler hands the pod here again after a restart; every step
is idempotent (a log is overwritten, a missing finalizer or pod is success).

A pod can also come here again after it is gone: a watch event (or a restarted
controller's replay of them) carries a copy taken before its finalizer was removed, so
it still looks uncleaned. Its logs cannot be read any more, and the failed read must not
replace the log stored the first time: a log is overwritten by what was read, never by
the reason nothing could be.

This runs on a small pool of its own: reading logs is the slowest call the executor
makes, and the watch that reports results must never wait behind it.

Cleanup yields to launches, as a scheduling choice: a pod's cleanup costs the API server
four requests (two log reads proxied to the node, the finalizer patch, the delete)
against one for a create, and on a small control plane they compete for the same CPU
(on two cores, cleaning up after a burst of launches while it runs slowed the burst by
a third). While the launcher has creates queued (``launches_waiting``), a finished pod
waits, but never longer than ``max_deferral`` after it was handed over; then it is
cleaned whatever the launcher does. So a burst of launches has the API server to itself
for up to that long, cleanup catches up as soon as the burst is over, and under
launches that never stop it still progresses, each pod at most ``max_deferral`` late.
A delay here costs nothing but a finished pod lingering a little longer, its finalizer
keeping its result and logs safe.

The finalizer is removed without reading the pod first: the copy from the watch event
says where the finalizer sits, and the patch's ``test`` op makes it conditional on
that still being true; only when the pod changed meanwhile is it read again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from kubernetes import client

from controller.base.backoff import Backoff
from controller.base.states import TaskState
from controller.executor.kubeclient import (
    DEFAULT_TIMEOUT,
    ApiError,
    ApiUnavailableError,
    raw_call,
    retry_call,
)
from controller.executor.observer import NO_OBSERVER, ExecutorObserver
from controller.executor.podlogs import ContainerLog, read_pod_logs
from controller.executor.podspec import RESULT_FINALIZER
from controller.logstore import LogKey, LogStore
from controller.store import TaskInstanceRecord

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 4
# Longer than a burst of a few thousand launches takes; short enough that finished pods
# do not pile up on the nodes under launches that never stop.
DEFAULT_MAX_DEFERRAL = 30.0
# How often a deferred cleanup looks again whether launches are still queued.
TURN_POLL_SECONDS = 0.05
# A create is answered within the launcher's bounded retries; past this, try again later.
IN_FLIGHT_WAIT_SECONDS = 120.0
# Deleted pods remembered, so late events about them cost no second delete.
DELETED_MEMORY = 10_000
API_BACKOFF = Backoff(base=0.2, cap=5.0, max_attempts=6, max_elapsed=30.0)
# How long past its grace period a stopped pod's node gets to report it stopped.
STOP_MARGIN = timedelta(seconds=10)
_CHANGED_UNDER_US = frozenset({409, 422})


@dataclass(frozen=True)
class CleanupPolicy:
    delete_on_success: bool = True
    delete_on_failure: bool = False
    ttl_seconds: float = 0.0


def has_finalizer(pod: Mapping[str, Any]) -> bool:
    return RESULT_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def should_delete(
    pod: Mapping[str, Any], *, succeeded: bool, policy: CleanupPolicy, now: datetime
) -> bool:
    """The policy wants this finished pod gone, and its TTL (if any) has passed.

    A pod whose try is over but which is not itself finished (stuck pulling its image,
    unschedulable past the timeout) always goes: left alone it could still start the
    task later, beside the fresh try that replaced it.
    """
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
        return True
    wanted = policy.delete_on_success if succeeded else policy.delete_on_failure
    if not wanted:
        return False
    if policy.ttl_seconds <= 0:
        return True
    finished = _finished_at(pod)
    return finished is None or (now - finished).total_seconds() >= policy.ttl_seconds


def stopping(pod: Mapping[str, Any], *, now: datetime) -> bool:
    """Deleted (an operator stopped its try) and still within its grace period, running.

    Its logs are read once it has stopped, so what the task printed while shutting down
    is kept. Past the grace period (a node that never reports) it is cleaned anyway.
    """
    deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
    if not deleting or (pod.get("status") or {}).get("phase") != "Running":
        return False
    return now < datetime.fromisoformat(str(deleting)) + STOP_MARGIN


def needs_cleanup(
    pod: Mapping[str, Any], *, succeeded: bool, policy: CleanupPolicy, now: datetime
) -> bool:
    if stopping(pod, now=now):
        return False
    return has_finalizer(pod) or should_delete(pod, succeeded=succeeded, policy=policy, now=now)


class PodCleaner:
    """Cleans finished pods on ``workers`` threads; a pod already being cleaned is skipped.

    While ``launches_waiting()`` is true, a pod waits, at most ``max_deferral`` seconds.
    """

    def __init__(
        self,
        api: client.ApiClient,
        log_store: LogStore,
        *,
        policy: CleanupPolicy,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: ExecutorObserver = NO_OBSERVER,
        launches_waiting: Callable[[], bool] = lambda: False,
        creating: Callable[[str], bool] = lambda _name: False,
        max_deferral: float = DEFAULT_MAX_DEFERRAL,
    ) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._log_store = log_store
        self.policy = policy
        self._clock = clock
        self._observer = observer
        self._launches_waiting = launches_waiting
        self._creating = creating
        self._max_deferral = max_deferral
        self._busy: set[str] = set()
        # The watch reports a pod's finalizer removal after the delete that followed it;
        # without this, that late event would send a second delete (answered 404).
        self._deleted: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pod-cleanup")
        self.cleaned = 0
        self.failures = 0

    def submit(self, pod: Mapping[str, Any], record: TaskInstanceRecord) -> bool:
        """Queue ``pod`` (whose try ``record`` is finished in the store) if it needs work."""
        succeeded = record.state is TaskState.SUCCEEDED
        if not needs_cleanup(pod, succeeded=succeeded, policy=self.policy, now=self._clock()):
            return False
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        with self._lock:
            if uid in self._busy or uid in self._deleted:
                return False
            self._busy.add(uid)
        try:
            self._pool.submit(self._clean, pod, record, uid, time.monotonic())
        except RuntimeError:
            with self._lock:
                self._busy.discard(uid)
            return False
        return True

    def terminate(self, *, namespace: str, name: str, grace_seconds: int | None) -> None:
        """Delete a running pod whose try an operator ended; returns at once.

        The result finalizer stays, so the pod's logs are stored (and the finalizer
        removed) when the watch reports it stopped, like any finished pod.
        """
        try:
            self._pool.submit(self._terminate, namespace, name, grace_seconds)
        except RuntimeError:
            log.warning("pod %s/%s not stopped: the controller is stopping", namespace, name)

    def _terminate(self, namespace: str, name: str, grace_seconds: int | None) -> None:
        try:
            self._delete_pod(
                namespace=namespace,
                name=name,
                options=client.V1DeleteOptions(grace_period_seconds=grace_seconds),
                what="stopping",
            )
        except Exception:
            # The row is finished: the next full reconcile hands the pod to cleanup.
            log.exception("stopping pod %s/%s failed", namespace, name)

    def idle(self) -> bool:
        with self._lock:
            return not self._busy

    def close(self, *, wait: bool = True) -> None:
        self._closing.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _take_turn(self, submitted: float) -> bool:
        """Wait while launches are queued, up to the deferral bound; False once closed."""
        until = submitted + self._max_deferral
        while not self._closing.is_set():
            if time.monotonic() >= until or not self._launches_waiting():
                return True
            self._closing.wait(TURN_POLL_SECONDS)
        return False

    def _no_create_in_flight(self, name: str) -> bool:
        """Wait (bounded) until no create of `name` is in flight; False if one still is."""
        deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        while self._creating(name):
            if time.monotonic() >= deadline or self._closing.wait(TURN_POLL_SECONDS):
                return False
        return True

    def _clean(
        self, pod: Mapping[str, Any], record: TaskInstanceRecord, uid: str, submitted: float
    ) -> None:
        metadata = pod.get("metadata") or {}
        name, namespace = str(metadata["name"]), str(metadata["namespace"])
        where = {
            "dag": record.dag_name,
            "run": record.run_id,
            "task": record.task_name,
            "item": record.item_index,
            "try": record.try_number,
            "pod": name,
        }
        if not self._take_turn(submitted):
            # Closing: the finalizer stays, and the next controller cleans the pod.
            with self._lock:
                self._busy.discard(uid)
            return
        if not self._no_create_in_flight(name):
            # A relaunch of this name is still being answered: removing the pod now could
            # let that create make it a second time. The finalizer stays; the next
            # reconcile brings the pod back here.
            with self._lock:
                self._busy.discard(uid)
            log.info("cleanup postponed: a create of this pod is in flight", extra=where)
            return
        try:
            if has_finalizer(pod):
                self._store_logs(namespace=namespace, name=name, record=record)
                self._remove_finalizer(pod, namespace=namespace, name=name)
            succeeded = record.state is TaskState.SUCCEEDED
            if should_delete(pod, succeeded=succeeded, policy=self.policy, now=self._clock()):
                self._delete(namespace=namespace, name=name, uid=uid)
                self._remember_deleted(uid)
            self.cleaned += 1
        except ApiUnavailableError as error:
            # The finalizer stays, so the next reconcile brings the pod back here.
            self.failures += 1
            log.warning("cleanup of a finished pod postponed: %s", error, extra=where)
        except Exception:
            self.failures += 1
            log.exception("cleanup of a finished pod failed", extra=where)
        finally:
            with self._lock:
                self._busy.discard(uid)

    def _remember_deleted(self, uid: str) -> None:
        with self._lock:
            self._deleted[uid] = None
            if len(self._deleted) > DELETED_MEMORY:
                self._deleted.popitem(last=False)

    def _store_logs(self, *, namespace: str, name: str, record: TaskInstanceRecord) -> None:
        for entry in read_pod_logs(
            self._api, namespace=namespace, pod=name, observer=self._observer
        ):
            key = LogKey(record.key, entry.container)
            if entry.error and not entry.text and self._log_store.exists(key):
                continue
            self._log_store.write(key, _log_text(entry))

    def _remove_finalizer(self, seen: Mapping[str, Any], *, namespace: str, name: str) -> None:
        # The first attempt trusts the watched copy; a retry means it was stale.
        known: list[Mapping[str, Any]] = [seen]

        def remove() -> None:
            pod = known.pop() if known else self._read(namespace=namespace, name=name)
            finalizers = list((pod.get("metadata") or {}).get("finalizers") or ())
            if RESULT_FINALIZER not in finalizers:
                return
            index = finalizers.index(RESULT_FINALIZER)
            # The test op makes the patch conditional on what we read: if another
            # finalizer was added or removed meanwhile, the index moved and we retry.
            patch = [
                {"op": "test", "path": f"/metadata/finalizers/{index}", "value": RESULT_FINALIZER},
                {"op": "remove", "path": f"/metadata/finalizers/{index}"},
            ]
            _discard(
                raw_call(
                    self._core.patch_namespaced_pod,
                    name,
                    namespace,
                    patch,
                    _request_timeout=DEFAULT_TIMEOUT,
                )
            )

        _with_retries(
            remove,
            what=f"removing the finalizer of pod {namespace}/{name}",
            observer=self._observer,
        )

    def _read(self, *, namespace: str, name: str) -> dict[str, Any]:
        """The pod as it is now ({} when gone), read with `list`, which the watch needs anyway.

        A get would do the same, but only on this rare retry path: listing by name keeps
        the controller's Role to the verbs it uses all the time.
        """
        response = raw_call(
            self._core.list_namespaced_pod,
            namespace,
            field_selector=f"metadata.name={name}",
            _request_timeout=DEFAULT_TIMEOUT,
        )
        try:
            items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
        finally:
            response.release_conn()
        return items[0] if items else {}

    def _delete(self, *, namespace: str, name: str, uid: str) -> None:
        self._delete_pod(
            namespace=namespace,
            name=name,
            options=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid or None)),
            what="deleting",
        )

    def _delete_pod(
        self, *, namespace: str, name: str, options: client.V1DeleteOptions, what: str
    ) -> None:
        def delete() -> None:
            _discard(
                raw_call(
                    self._core.delete_namespaced_pod,
                    name,
                    namespace,
                    body=options,
                    _request_timeout=DEFAULT_TIMEOUT,
                )
            )

        _with_retries(delete, what=f"{what} pod {namespace}/{name}", observer=self._observer)


def _with_retries(call: Callable[[], None], *, what: str, observer: ExecutorObserver) -> None:
    """``call`` with the API retry; a 404 (pod gone) is success.

    A 409/422 (precondition or test op failed: the pod changed under us) is retried,
    since the next attempt reads the pod afresh.
    """

    def count(error: ApiError) -> None:
        if error.status != 404:
            observer.api_error(error.status)

    try:
        retry_call(
            call, backoff=API_BACKOFF, what=what, also_retry=_CHANGED_UNDER_US, on_error=count
        )
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Drop a response nobody reads (the pod as patched or deleted), keeping its connection.

    Decoding it into models would cost client CPU on every pod, for nothing.
    """
    response.drain_conn()
    response.release_conn()


def _log_text(entry: ContainerLog) -> str:
    text = entry.text
    if entry.truncated:
        text += "\n[kubedag: log cut at the size limit]\n"
    if entry.error and not text:
        text = f"[kubedag: no log: {entry.error}]\n"
    return text


def _finished_at(pod: Mapping[str, Any]) -> datetime | None:
    latest: datetime | None = None
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        finished = ((status.get("state") or {}).get("terminated") or {}).get("finishedAt")
        if finished:
            moment = datetime.fromisoformat(str(finished))
            latest = moment if latest is None or moment > latest else latest
    return latest
