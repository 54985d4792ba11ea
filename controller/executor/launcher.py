"""Creating worker pods fast, exactly once, and reporting each outcome as soon as it is known.

Creating a pod is one HTTP round trip of a few milliseconds, almost all of it spent waiting
on the API server; Airflow's executor makes them one at a time per scheduler loop and gets
about one pod per second. The launcher keeps many creates in flight (a bounded pool of
workers over one shared keep-alive connection pool), sends the pod's JSON without the
generated client's model round trip and never deserialises the created pod (nobody reads
it: the watch reports the pod's life), since on a small control plane every millisecond
of controller CPU is one the API server does not get; and it paces itself with a
client-side token bucket whose defaults sit above what an API server serves, so it protects
the server from a runaway loop without throttling normal work.

Exactly-once rests on deterministic pod names: a 409 AlreadyExists means an earlier
attempt (before a crash, or a retried request whose answer was lost) already created the
pod, so it is adopted and never created a second time. Throttling (429), server errors
and broken connections are retried with jittered exponential backoff, honouring
Retry-After, until a bound of attempts and time; any other refusal is final and carries
the API's own message, because a pod the API calls invalid will not become valid by
retrying.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from controller.base.backoff import Backoff
from controller.executor.kubeclient import (
    DEFAULT_TIMEOUT,
    ApiError,
    ApiUnavailableError,
    RetryStoppedError,
    forbidden_message,
    pool_maxsize,
    post_json,
    read_error,
    retry_call,
)
from controller.executor.observer import NO_OBSERVER, ExecutorObserver, LaunchStatus
from controller.executor.ratelimit import make_limiter

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 16
DEFAULT_QPS = 500.0
DEFAULT_BURST = 1000


@dataclass(frozen=True)
class LaunchRequest:
    """Create ``body`` (a Pod as a JSON-ready dict) in ``namespace``; ``key`` is the caller's."""

    namespace: str
    body: Mapping[str, Any]
    key: Hashable = field(default=None, compare=False)

    @property
    def pod_name(self) -> str:
        return str(self.body["metadata"]["name"])


@dataclass(frozen=True)
class LaunchOutcome:
    request: LaunchRequest
    status: LaunchStatus
    message: str = ""
    http_status: int | None = None
    attempts: int = 1

    @property
    def key(self) -> Hashable:
        return self.request.key


LaunchCallback = Callable[[LaunchOutcome], None]


class Launcher:
    """A pool of ``workers`` creating pods concurrently, at most ``qps`` creates per second.

    ``qps=None`` removes the client-side limit. Every submitted request gets exactly one
    outcome, also when the launcher is closed while the request waits or backs off.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        workers: int = DEFAULT_WORKERS,
        qps: float | None = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
        backoff: Backoff | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        observer: ExecutorObserver = NO_OBSERVER,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if pool_maxsize(api) < workers:
            raise ValueError(
                f"the API client keeps {pool_maxsize(api)} connections but the launcher has "
                f"{workers} workers; build it with make_api_client(pool_maxsize>={workers})"
            )
        self._api = api
        self._limiter = make_limiter(qps=qps, burst=burst)
        self._backoff = backoff or Backoff()
        self._timeout = timeout
        self._observer = observer
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="launcher")
        self._backlog_lock = threading.Lock()
        self._backlog = 0

    def submit(
        self, request: LaunchRequest, callback: LaunchCallback | None = None
    ) -> Future[LaunchOutcome]:
        """Queue ``request``; ``callback`` runs on a worker thread with its outcome.

        Keep callbacks short (hand the outcome to a queue or a database writer): a worker
        blocked in a callback is a worker not creating pods.
        """
        with self._backlog_lock:
            self._backlog += 1
        try:
            return self._pool.submit(self._run, request, callback)
        except BaseException:
            self._done()
            raise

    @property
    def backlog(self) -> int:
        """Requests submitted whose outcome is not known yet (queued, creating, backing off)."""
        with self._backlog_lock:
            return self._backlog

    def _done(self) -> None:
        with self._backlog_lock:
            self._backlog -= 1

    def launch(self, requests: Iterable[LaunchRequest]) -> list[LaunchOutcome]:
        """Launch all ``requests`` concurrently; outcomes in the order of the requests."""
        futures = [self.submit(request) for request in requests]
        return [future.result() for future in futures]

    def close(self, *, wait: bool = True) -> None:
        """Stop: requests not yet sent end GAVE_UP at once; with ``wait``, join the workers."""
        self._stop.set()
        self._pool.shutdown(wait=wait)

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, request: LaunchRequest, callback: LaunchCallback | None) -> LaunchOutcome:
        try:
            outcome = self._create(request)
        finally:
            self._done()
        if callback is not None:
            try:
                callback(outcome)
            except Exception:
                # A failing consumer must not kill the worker; the outcome is still
                # returned through the future.
                log.exception("launch callback failed for pod %s", request.pod_name)
        return outcome

    def _create(self, request: LaunchRequest) -> LaunchOutcome:
        attempts = 0

        def create() -> None:
            nonlocal attempts
            if self._stop.is_set() or (
                self._limiter is not None and not self._limiter.acquire(stop=self._stop)
            ):
                raise RetryStoppedError(f"creating pod {request.pod_name}: stopped")
            attempts += 1
            response = post_json(
                self._api,
                f"/api/v1/namespaces/{request.namespace}/pods",
                request.body,
                timeout=self._timeout,
            )
            # Read the (unused) body so the connection goes back to the pool.
            response.drain_conn()
            response.release_conn()

        try:
            retry_call(
                create,
                backoff=self._backoff,
                what=f"creating pod {request.pod_name}",
                on_error=self._count_error,
                stop=self._stop,
            )
        except RetryStoppedError:
            return self._stopped(request, attempts)
        except ApiUnavailableError as gave_up:
            return LaunchOutcome(
                request,
                LaunchStatus.GAVE_UP,
                message=str(gave_up),
                http_status=gave_up.error.status if gave_up.error else None,
                attempts=attempts,
            )
        except client.ApiException as exc:
            return self._final_outcome(request, read_error(exc), attempts)
        return LaunchOutcome(request, LaunchStatus.CREATED, attempts=attempts)

    def _count_error(self, error: ApiError) -> None:
        # AlreadyExists is how a pod is adopted, reported as its launch outcome.
        if error.status != 409:
            self._observer.api_error(error.status)

    def _final_outcome(
        self, request: LaunchRequest, error: ApiError, attempt: int
    ) -> LaunchOutcome:
        """The outcome of a final refusal: AlreadyExists (adopted) or rejected."""
        if error.status == 409:
            return LaunchOutcome(
                request,
                LaunchStatus.ALREADY_EXISTS,
                message=error.message,
                http_status=409,
                attempts=attempt,
            )
        message = error.message
        if error.status == 403:
            message = forbidden_message(
                verb="create", resource="pods", namespace=request.namespace, error=error
            )
        return LaunchOutcome(
            request,
            LaunchStatus.REJECTED,
            message=message,
            http_status=error.status,
            attempts=attempt,
        )

    @staticmethod
    def _stopped(request: LaunchRequest, attempts: int) -> LaunchOutcome:
        message = f"the launcher stopped before pod {request.pod_name} was created"
        if attempts:
            # A request that timed out may still have been carried out by the server.
            message = (
                f"the launcher stopped while retrying pod {request.pod_name}; "
                "an earlier attempt may have created it"
            )
        return LaunchOutcome(request, LaunchStatus.GAVE_UP, message=message, attempts=attempts)
