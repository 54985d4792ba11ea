"""A pod watch that resumes where it left off, and says so plainly when it cannot.

The Python client's ``Watch`` hides the two things a controller that persists its cursor
must see: which resourceVersion each event brought it to (bookmarks included, which carry
no pod), and the moment the cursor has become too old. Here the stream is read as raw JSON
lines, so pods stay plain dicts for the pure classifier and no model is built per event.

The loop is kopf's: list, then watch from the list's resourceVersion; when the server
answers 410 Gone (as an HTTP error when the watch opens, or as an ``ERROR`` event with
``code: 410`` in an open stream), history since our cursor is lost, so we raise
:class:`WatchExpiredError` and the caller lists again (:func:`list_pods`) and reconciles before
resuming from the list's resourceVersion. A server-side timeout ending the stream is
normal and resumes at once; a dropped connection or a failing server resumes from the last
seen resourceVersion after a jittered backoff, and gives up with :class:`WatchUnavailableError`
once the backoff's bounds are spent. ``stop()`` from another thread ends the iteration
promptly by shutting the open response's socket instead of waiting for the next event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes import client

from controller.base.backoff import Backoff
from controller.executor.kubeclient import (
    DEFAULT_TIMEOUT,
    ApiError,
    ApiRetry,
    ApiUnavailableError,
    StoppableStream,
    raw_call,
    read_error,
    retry_call,
)
from controller.executor.observer import NO_OBSERVER, ExecutorObserver

log = logging.getLogger(__name__)

# The server ends each watch after this long; we reconnect from our cursor. Short enough to
# notice a silently dead connection, long enough to cost nothing.
DEFAULT_SERVER_TIMEOUT = 300
# Slack between the server's timeout and our socket read timeout: bookmarks arrive about
# once a minute, so a read idle for longer than server timeout + this is a dead connection.
READ_SLACK = 30.0
MIN_HEALTHY_STREAM = 1.0
DEFAULT_PAGE_SIZE = 500
WATCH_BACKOFF = Backoff(base=0.5, cap=10.0, max_attempts=30, max_elapsed=300.0)
LIST_BACKOFF = Backoff(base=0.5, cap=10.0, max_attempts=10, max_elapsed=120.0)
# A snapshot that expired mid-list (410 on a continue token): list again from the start.
_SNAPSHOT_EXPIRED = frozenset({410})


class WatchExpiredError(Exception):
    """The server no longer has history since the cursor: list again, then watch."""


class WatchUnavailableError(ApiUnavailableError):
    """The watch or list failed for longer than its backoff allows; carries the last error."""


@dataclass(frozen=True)
class WatchEvent:
    """``type`` is ADDED, MODIFIED, DELETED or BOOKMARK (which has no pod)."""

    type: str
    pod: dict[str, Any] | None
    resource_version: str


class PodWatch(StoppableStream):
    """Iterate pod events in ``namespace`` matching ``label_selector`` after ``resource_version``.

    Not restartable after ``stop()``; make a new one from :attr:`resource_version`.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        label_selector: str,
        resource_version: str,
        server_timeout: int = DEFAULT_SERVER_TIMEOUT,
        connect_timeout: float = DEFAULT_TIMEOUT[0],
        backoff: Backoff = WATCH_BACKOFF,
        observer: ExecutorObserver = NO_OBSERVER,
    ) -> None:
        if not resource_version:
            raise ValueError("a watch needs a resourceVersion to start from; list first")
        super().__init__()
        self._core = client.CoreV1Api(api)
        self.namespace = namespace
        self.label_selector = label_selector
        self.resource_version = resource_version
        self._server_timeout = server_timeout
        self._connect_timeout = connect_timeout
        self._backoff = backoff
        self._observer = observer

    def __iter__(self) -> Iterator[WatchEvent]:
        retry = ApiRetry(
            self._backoff,
            what=f"watching pods in {self.namespace!r}",
            unavailable=WatchUnavailableError,
        )
        while not self._stopped.is_set():
            opened = time.monotonic()
            delivered = False
            try:
                for event in self._stream_once():
                    retry.succeeded()
                    delivered = True
                    yield event
                if delivered or time.monotonic() - opened >= MIN_HEALTHY_STREAM:
                    retry.succeeded()
                    continue  # the server ended the watch on its timeout; resume at once
                # A stream that closes at once with nothing in it would otherwise spin.
                error = ApiError(
                    status=None,
                    reason="EmptyStream",
                    message="the watch closed at once",
                    retryable=True,
                )
            except WatchExpiredError:
                raise
            except Exception as exc:
                if self._stopped.is_set():
                    return
                error = read_error(exc)
                self._observer.api_error(error.status)
                if error.status is not None and not error.retryable:
                    raise
            pause = retry.failed(error)
            log.warning(
                "pod watch in %s interrupted (%s: %s); resuming from %s in %.1fs",
                self.namespace,
                error.reason,
                error.message,
                self.resource_version,
                pause,
            )
            self._observer.watch_restarted()
            if self._stopped.wait(pause):
                return

    def _stream_once(self) -> Iterator[WatchEvent]:
        try:
            response = raw_call(
                self._core.list_namespaced_pod,
                self.namespace,
                label_selector=self.label_selector,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=self.resource_version,
                timeout_seconds=self._server_timeout,
                _request_timeout=(self._connect_timeout, self._server_timeout + READ_SLACK),
            )
        except client.ApiException as exc:
            if exc.status == 410:
                raise WatchExpiredError(read_error(exc).message) from exc
            raise
        for line in self._lines(response):
            event = parse_event(orjson.loads(line))
            if event is not None:
                self.resource_version = event.resource_version
                yield event


def parse_event(raw: Mapping[str, Any]) -> WatchEvent | None:
    """One decoded watch line as an event; None for a malformed one.

    Raises WatchExpiredError for an ERROR event with code 410, and ApiException for any
    other ERROR event, so both travel the same paths as errors raised when opening.
    """
    kind = raw.get("type")
    obj = raw.get("object") or {}
    if kind == "ERROR":
        code = obj.get("code")
        message = obj.get("message") or "watch error"
        if code == 410:
            raise WatchExpiredError(message)
        raise client.ApiException(status=code or 500, reason=message)
    version = (obj.get("metadata") or {}).get("resourceVersion")
    if not kind or not version:
        log.warning("ignoring a malformed watch event of type %r", kind)
        return None
    if kind == "BOOKMARK":
        return WatchEvent(type=kind, pod=None, resource_version=version)
    return WatchEvent(type=kind, pod=obj, resource_version=version)


def list_pods(
    api: client.ApiClient,
    *,
    namespace: str,
    label_selector: str,
    page_size: int = DEFAULT_PAGE_SIZE,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    backoff: Backoff = LIST_BACKOFF,
    observer: ExecutorObserver = NO_OBSERVER,
) -> tuple[list[dict[str, Any]], str]:
    """All matching pods as dicts, and the resourceVersion to watch from after them.

    Pages of ``page_size`` keep each response small; all pages come from one consistent
    snapshot. If the snapshot expires mid-list (410 on a continue token) or the server
    fails, the list starts over after a backoff, within the backoff's bounds.
    """
    core = client.CoreV1Api(api)
    return retry_call(
        lambda: _list_all(
            core,
            namespace=namespace,
            label_selector=label_selector,
            page_size=page_size,
            timeout=timeout,
        ),
        backoff=backoff,
        what=f"listing pods in {namespace!r}",
        also_retry=_SNAPSHOT_EXPIRED,
        on_error=lambda error: observer.api_error(error.status),
        unavailable=WatchUnavailableError,
    )


def _list_all(
    core: client.CoreV1Api,
    *,
    namespace: str,
    label_selector: str,
    page_size: int,
    timeout: tuple[float, float],
) -> tuple[list[dict[str, Any]], str]:
    pods: list[dict[str, Any]] = []
    token: str | None = None
    version = ""
    while True:
        response = raw_call(
            core.list_namespaced_pod,
            namespace,
            label_selector=label_selector,
            limit=page_size,
            _continue=token,
            _request_timeout=timeout,
        )
        try:
            page = orjson.loads(response.data)
        finally:
            response.release_conn()
        metadata = page.get("metadata") or {}
        # Every page of one list shares the snapshot's resourceVersion; keep the first.
        version = version or metadata.get("resourceVersion", "")
        pods.extend(page.get("items") or ())
        token = metadata.get("continue") or None
        if token is None:
            return pods, version
