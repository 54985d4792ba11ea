"""Reading worker pods' logs through the API: all of a finished pod's, or a running one's live.

Logs live on the node and vanish with the pod, so they are read through the API server
(which proxies to the kubelet) before the pod is deleted. Two traps: a chatty task can
write gigabytes, so every read is bounded (``limitBytes``) and says when it was cut; and a
log stream can drop at any time (apiserver restart, idle proxies), so following reconnects
from the last line's timestamp (``sinceTime``) and skips what it already yielded, instead
of printing the log twice or silently stopping halfway. A followed pod can also vanish:
the executor deletes a finished pod as soon as it has stored its log, often before a
follower has learned that the container ended, so a pod gone mid-follow is told apart
from a failure (:class:`PodGoneError`) for the caller to finish from the log store.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import urllib3
from kubernetes import client

from controller.base.backoff import Backoff
from controller.executor.gitcheckout import CONTAINER_NAME as INIT_CONTAINER
from controller.executor.kubeclient import (
    DEFAULT_TIMEOUT,
    ApiRetry,
    ApiUnavailableError,
    StoppableStream,
    describe_api_exception,
    raw_call,
    read_error,
    retry_call,
)
from controller.executor.observer import NO_OBSERVER, ExecutorObserver
from controller.executor.podspec import TASK_CONTAINER as MAIN_CONTAINER

log = logging.getLogger(__name__)

DEFAULT_LIMIT_BYTES = 4 * 1024 * 1024
READ_BACKOFF = Backoff(base=0.5, cap=5.0, max_attempts=5, max_elapsed=30.0)
# Following waits for a pending container to start, so it allows a long while.
FOLLOW_BACKOFF = Backoff(base=0.5, cap=5.0, max_attempts=400, max_elapsed=1800.0)
DEFAULT_IDLE_TIMEOUT = 60.0
RESUME_MARGIN = 2
# "Waiting to start" (400), and "not found" (404) from a node that has not started a pod
# the API has: a follow waits these out within its backoff.
WAIT_STATUSES = (400, 404)
# A stream that ends while its container still runs was cut; do not reconnect in a spin.
RECONNECT_PAUSE = 1.0


@dataclass(frozen=True)
class ContainerLog:
    """One container's log; ``error`` says why there is none (e.g. it never started)."""

    container: str
    text: str
    truncated: bool = False
    error: str | None = None


class LogUnavailableError(ApiUnavailableError):
    """Reading a log failed for longer than the backoff allows."""


class PodGoneError(Exception):
    """The followed pod does not exist (any more), or its node no longer has the log of its
    ended container: what is left of the log is in the log store."""


def read_pod_logs(
    api: client.ApiClient,
    *,
    namespace: str,
    pod: str,
    containers: Sequence[str] = (INIT_CONTAINER, MAIN_CONTAINER),
    limit_bytes: int = DEFAULT_LIMIT_BYTES,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    backoff: Backoff = READ_BACKOFF,
    observer: ExecutorObserver = NO_OBSERVER,
) -> list[ContainerLog]:
    """Each container's log, at most ``limit_bytes`` each, in the order of ``containers``.

    A container the API cannot serve a log for (it never started, the pod is gone) gets
    an empty log with the API's reason as ``error``; transient failures are retried and,
    past the backoff's bounds, raise :class:`LogUnavailableError`.
    """
    core = client.CoreV1Api(api)
    return [
        _read_one(
            core,
            namespace=namespace,
            pod=pod,
            container=name,
            limit_bytes=limit_bytes,
            timeout=timeout,
            backoff=backoff,
            observer=observer,
        )
        for name in containers
    ]


def _read_one(
    core: client.CoreV1Api,
    *,
    namespace: str,
    pod: str,
    container: str,
    limit_bytes: int,
    timeout: tuple[float, float],
    backoff: Backoff,
    observer: ExecutorObserver,
) -> ContainerLog:
    def fetch() -> bytes:
        response = raw_call(
            core.read_namespaced_pod_log,
            pod,
            namespace,
            container=container,
            # One byte more than we keep tells "cut" apart from "exactly this long".
            limit_bytes=limit_bytes + 1,
            _request_timeout=timeout,
        )
        try:
            return response.data
        finally:
            response.release_conn()

    try:
        data = retry_call(
            fetch,
            backoff=backoff,
            what=f"reading the log of {pod}/{container}",
            on_error=lambda error: observer.api_error(error.status),
            unavailable=LogUnavailableError,
        )
    except client.ApiException as exc:
        error = read_error(exc)
        if error.status == 403:
            # Not a pod without a log: no pod's log can be kept until the Role is fixed.
            log.warning(
                "cannot keep the log of %s/%s: %s", pod, container, describe_api_exception(exc)
            )
        return ContainerLog(container=container, text="", error=error.message)
    return ContainerLog(
        container=container,
        text=data[:limit_bytes].decode("utf-8", "replace"),
        truncated=len(data) > limit_bytes,
    )


class LogFollow(StoppableStream):
    """Iterate a container's log lines as they are written, until the container ends.

    ``stop()`` from another thread ends the iteration promptly. When the pod is not found
    (deleted once finished, or not created yet), iteration raises :class:`PodGoneError`. A
    node that answers "not found" for a pod that exists has not started it yet, and the
    follow waits for it within ``backoff``; each failed attempt goes to ``observer``.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        pod: str,
        container: str = MAIN_CONTAINER,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        connect_timeout: float = DEFAULT_TIMEOUT[0],
        backoff: Backoff = FOLLOW_BACKOFF,
        observer: ExecutorObserver = NO_OBSERVER,
    ) -> None:
        super().__init__()
        self._core = client.CoreV1Api(api)
        self._observer = observer
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self._timeout = (connect_timeout, idle_timeout)
        self._backoff = backoff
        self._cursor = LineCursor()

    def __iter__(self) -> Iterator[str]:
        retry = ApiRetry(
            self._backoff,
            what=f"following the log of {self.pod}/{self.container}",
            unavailable=LogUnavailableError,
        )
        while not self._stopped.is_set():
            try:
                yield from self._stream_once()
            except urllib3.exceptions.ReadTimeoutError:
                # A quiet task is normal; only an ended container ends the follow.
                if self._stopped.is_set() or self._container_finished():
                    return
                continue
            except Exception as exc:
                if self._stopped.is_set():
                    return
                error = read_error(exc)
                self._observer.api_error(error.status)
                if error.status == 404 and self._container_finished():
                    raise PodGoneError(
                        f"the node of pod {self.pod} has no log of its ended {self.container}"
                    ) from exc
                if not (error.status is None or error.retryable or error.status in WAIT_STATUSES):
                    raise
                # 400 is "waiting to start", and a 404 for a pod that exists comes from a node
                # that has not started it yet (or not even learned of it): a log comes soon.
                if self._stopped.wait(retry.failed(error)):
                    return
                continue
            retry.succeeded()
            if self._container_finished() or self._stopped.wait(RECONNECT_PAUSE):
                return

    def _stream_once(self) -> Iterator[str]:
        response = raw_call(
            self._core.read_namespaced_pod_log,
            self.pod,
            self.namespace,
            container=self.container,
            follow=True,
            timestamps=True,
            **self._resume_from(),
            _request_timeout=self._timeout,
        )
        self._cursor.begin_stream()
        for raw in self._lines(response):
            line = self._cursor.admit(raw.decode("utf-8", "replace"))
            if line is not None:
                yield line

    def _resume_from(self) -> dict[str, int]:
        """After a reconnect, ask again from a little before the last line seen.

        The API takes whole seconds back from the node's clock; the margin covers rounding
        and clock skew, and the cursor drops the overlap it brings back.
        """
        if self._cursor.last_second is None:
            return {}
        behind = (datetime.now(UTC) - self._cursor.last_second).total_seconds()
        return {"since_seconds": max(1, math.ceil(behind) + RESUME_MARGIN)}

    def _container_finished(self) -> bool:
        try:
            response = raw_call(
                self._core.read_namespaced_pod,
                self.pod,
                self.namespace,
                _request_timeout=self._timeout,
            )
        except client.ApiException as exc:
            if exc.status == 404:
                raise PodGoneError(f"pod {self.pod} not found") from exc
            raise
        try:
            status = json.loads(response.data).get("status") or {}
        finally:
            response.release_conn()
        if status.get("phase") in ("Succeeded", "Failed"):
            return True
        statuses = [
            *(status.get("initContainerStatuses") or ()),
            *(status.get("containerStatuses") or ()),
        ]
        return any(
            (s.get("state") or {}).get("terminated") is not None
            for s in statuses
            if s.get("name") == self.container
        )


class LineCursor:
    """How far a follow got: the last timestamp yielded, and how many lines carried it.

    Lines written together share a timestamp, so resuming "after the last timestamp" would
    lose lines and "from it" would repeat them; counting the lines at that timestamp makes
    a resumed stream pick up exactly where the previous one stopped.
    """

    def __init__(self) -> None:
        self.last: tuple[str, str] | None = None
        self.same = 0
        self.last_second: datetime | None = None
        self._replay_last: tuple[str, str] | None = None
        self._replay_left = 0

    def begin_stream(self) -> None:
        """A new stream starts; it may replay lines the previous ones already gave."""
        self._replay_last = self.last
        self._replay_left = self.same

    def admit(self, stamped: str) -> str | None:
        """The line without its timestamp, or None if it was already yielded."""
        stamp, _, text = stamped.partition(" ")
        key = stamp_key(stamp)
        if key is None:
            return stamped
        if self._replay_last is not None:
            if key < self._replay_last:
                return None
            if key == self._replay_last and self._replay_left > 0:
                self._replay_left -= 1
                return None
            self._replay_last = None
        if key == self.last:
            self.same += 1
        else:
            self.last, self.same = key, 1
            self.last_second = datetime.fromisoformat(key[0]).replace(tzinfo=UTC)
        return text


def stamp_key(stamp: str) -> tuple[str, str] | None:
    """An RFC 3339 UTC timestamp with up to nanoseconds, as a key that sorts correctly.

    The kubelet trims trailing zeros of the fraction, so the strings themselves do not sort.
    """
    if len(stamp) < 20 or stamp[4] != "-" or stamp[10] != "T" or not stamp.endswith("Z"):
        return None
    whole, _, fraction = stamp[:-1].partition(".")
    return whole, fraction.ljust(9, "0")
