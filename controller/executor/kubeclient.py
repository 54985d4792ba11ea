"""One Kubernetes API client for the whole controller, and how to read its failures.

Why a module of its own: the Python client's defaults are wrong for a controller. Its
connection pool holds ``5 * cpu_count`` connections (10 on a 2-core node), so a launcher
with 16 workers would open and discard a TLS connection per request; it sets no request
timeout, so a half-dead connection hangs a thread forever; and urllib3's own silent retries
would hide failures from the backoff we control. Here the pool is sized for the launcher,
every call gets an explicit ``(connect, read)`` timeout, and TCP keepalive guards long
watches.

It also holds the one place that decides what an error means: retryable (429, 5xx,
timeouts, dropped connections) or final, with the API's own ``Status`` message; and the
one way to retry a call: ``retry_call`` for a request and its answer, ``ApiRetry`` for a
stream that resumes. Both back off through the project's one backoff, honour Retry-After,
and give up with the call named and the last error told.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
import urllib3
from kubernetes import client, config

from controller.base.backoff import Backoff

DEFAULT_POOL_MAXSIZE = 32
# (connect, read) seconds for ordinary request/response calls.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")

ApiClient = client.ApiClient
"""The client every caller shares (``make_api_client``), named here so that only the
executor, the local-cluster tooling and the node agent import the Kubernetes client."""
CREDENTIAL_ERRORS = (config.ConfigException, OSError)
"""What ``make_api_client`` raises when no kubeconfig or in-cluster account can be read."""


def load_configuration(
    *, kubeconfig: str | None = None, context: str | None = None
) -> client.Configuration:
    """Configuration from ``kubeconfig`` (or $KUBECONFIG, ~/.kube/config), else in-cluster.

    In-cluster wins only when no kubeconfig was named and we run in a pod, so a developer's
    laptop never silently talks to the wrong cluster.
    """
    configuration = client.Configuration()
    named = kubeconfig or os.environ.get("KUBECONFIG")
    if named is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=named, context=context, client_configuration=configuration
        )
    return configuration


def make_api_client(
    *,
    configuration: client.Configuration | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
) -> client.ApiClient:
    """An ApiClient whose pool keeps ``pool_maxsize`` connections alive, to share everywhere."""
    if configuration is None:
        configuration = load_configuration(kubeconfig=kubeconfig, context=context)
    configuration.connection_pool_maxsize = pool_maxsize
    # Our callers retry with backoff and know which requests are safe to repeat.
    configuration.retries = False
    configuration.keep_alive = True
    return client.ApiClient(configuration)


def raw_call(method: Callable[..., object], *args: Any, **kwargs: Any) -> urllib3.BaseHTTPResponse:
    """Call a generated API ``method`` for its undecoded HTTP response.

    Pods are handled as the JSON dicts the API serves; building models for them costs CPU
    on every event and renames every field, so callers read the body themselves and must
    release the connection when done.
    """
    return cast(urllib3.BaseHTTPResponse, method(*args, _preload_content=False, **kwargs))


def post_json(
    api: client.ApiClient,
    path: str,
    body: Mapping[str, Any],
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> urllib3.BaseHTTPResponse:
    """POST ``body`` as JSON to the API ``path``, for its undecoded response.

    What the generated method would send, without its argument checking: it validates a
    dict body into the client's models and serialises them back, which for a pod costs
    more CPU than the request itself, on every launch. Authentication is the client's
    own (its token, refreshed as it refreshes it; its TLS setup), and a non-2xx answer
    raises the same ``ApiException`` the generated methods raise, so ``read_error``
    reads it. The caller must release the connection.
    """
    headers = {
        **api.default_headers,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    api.update_params_for_auth(headers, [], ["BearerToken"], path, "POST", None)
    response = api.rest_client.pool_manager.request(
        "POST",
        api.configuration.host + path,
        body=orjson.dumps(body),
        headers=headers,
        timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        preload_content=False,
        retries=False,
    )
    if not 200 <= response.status <= 299:
        refusal = client.ApiException(status=response.status, reason=response.reason)
        refusal.body = response.data.decode("utf-8", "replace")
        refusal.headers = response.headers
        response.release_conn()
        raise refusal
    return response


def iter_lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """Non-empty lines of a streamed body; chunk boundaries fall anywhere, even mid-line."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        *lines, buffer = (buffer + chunk).split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def shutdown_response(response: urllib3.BaseHTTPResponse) -> None:
    """Unblock a thread reading ``response``: shut its socket down from this thread.

    Closing alone does not wake a reader blocked in recv(); urllib3 >= 2.3's shutdown does.
    """
    try:
        response.shutdown()
    except (AttributeError, OSError, urllib3.exceptions.HTTPError):
        response.close()


class StoppableStream:
    """A streamed read (a watch, a followed log) that another thread may end at once.

    Closing a response does not wake a reader blocked in recv(), so the response being
    read is kept here, under a lock, for ``stop()`` to shut its socket down.
    """

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None

    def stop(self) -> None:
        """End the iteration promptly; safe to call from any thread, more than once."""
        self._stopped.set()
        with self._lock:
            response = self._response
        if response is not None:
            shutdown_response(response)

    def _lines(self, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        """The non-empty lines of ``response`` until it ends or ``stop()`` is called.

        The connection goes back to the pool when the body was read to its end, and is
        closed when it was not: mid-stream it cannot serve another request.
        """
        with self._lock:
            self._response = response
        if self._stopped.is_set():
            shutdown_response(response)
        finished = False
        try:
            for line in iter_lines(response):
                if self._stopped.is_set():
                    return
                yield line
            finished = True
        finally:
            with self._lock:
                self._response = None
            if not finished:
                response.close()
            response.release_conn()


def pool_maxsize(api: client.ApiClient) -> int:
    """How many connections ``api`` keeps alive (the urllib3 pool's maxsize)."""
    size = api.configuration.connection_pool_maxsize
    return int(size) if size is not None else 1


@dataclass(frozen=True)
class ApiError:
    """An API failure, read for users: HTTP status, Status reason, and message."""

    status: int | None
    reason: str
    message: str
    retryable: bool
    retry_after: float | None = None


def read_error(exc: BaseException) -> ApiError:
    """Interpret an exception raised by a client call; anything that is not I/O is re-raised.

    Re-raising keeps bugs (a TypeError in our own code) from being retried as outages.
    """
    if isinstance(exc, client.ApiException):
        body = _status_body(exc.body)
        status = int(exc.status) if exc.status is not None else None
        reason = str(body.get("reason") or exc.reason or "")
        message = str(body.get("message") or exc.reason or f"HTTP {status}")
        return ApiError(
            status=status,
            reason=reason,
            message=message,
            retryable=status in RETRYABLE_STATUSES,
            retry_after=_retry_after(exc.headers),
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | http.client.HTTPException | OSError):
        return ApiError(
            status=None, reason=type(exc).__name__, message=str(exc) or repr(exc), retryable=True
        )
    raise exc


def describe_error(error: ApiError) -> str:
    """One line for a log or a message: ``HTTP 503 ServiceUnavailable: the message``."""
    status = f"HTTP {error.status} " if error.status is not None else ""
    return f"{status}{error.reason}: {error.message}".strip()


class ApiUnavailableError(Exception):
    """A call failed for longer than its backoff allows; carries the last error."""

    def __init__(self, message: str, error: ApiError | None = None) -> None:
        super().__init__(message)
        self.error = error


class RetryStoppedError(Exception):
    """The caller's stop event was set while a failed call waited for its next attempt."""


class ApiRetry:
    """The failures in a row of one call, and the pause before its next attempt.

    For loops that cannot hand a single callable to ``retry_call``, such as a stream that
    resumes where it broke off: they report each failure and each success here, so the
    counting, the bounds and the message on giving up are the same everywhere.
    """

    def __init__(
        self,
        backoff: Backoff,
        *,
        what: str,
        unavailable: type[ApiUnavailableError] = ApiUnavailableError,
    ) -> None:
        self.what = what
        self.failures = 0
        self._backoff = backoff
        self._unavailable = unavailable
        # Time is counted from the first attempt, and after a success from the next failure.
        self._since: float | None = time.monotonic()

    def failed(self, error: ApiError) -> float:
        """Count one failure; the pause before the next attempt.

        Raises ``unavailable`` once the backoff's bounds are spent. A server's Retry-After
        is a floor for the pause.
        """
        self.failures += 1
        now = time.monotonic()
        if self._since is None:
            self._since = now
        elapsed = now - self._since
        pause = self._backoff.next_delay(
            attempt=self.failures, elapsed=elapsed, retry_after=error.retry_after
        )
        if pause is None:
            raise self._unavailable(
                f"gave up {self.what} after {self.failures} attempts in {elapsed:.1f}s; "
                f"last error: {describe_error(error)}",
                error,
            )
        return pause

    def succeeded(self) -> None:
        """The call got through: the next failure starts a new count."""
        self.failures = 0
        self._since = None


def retry_call(
    call: Callable[[], T],
    *,
    backoff: Backoff,
    what: str,
    also_retry: frozenset[int] = frozenset(),
    on_error: Callable[[ApiError], None] | None = None,
    stop: threading.Event | None = None,
    unavailable: type[ApiUnavailableError] = ApiUnavailableError,
) -> T:
    """``call()``, tried again after transient failures until the backoff's bounds are spent.

    Transient means ``read_error`` says retryable, or the HTTP status is in
    ``also_retry`` (say 409 for a write whose next attempt reads the object afresh). A
    final refusal is raised as the client raised it; a bug in ``call`` is raised at once.
    ``on_error`` sees every failure (to count it); giving up raises ``unavailable``; a set
    ``stop`` ends the wait with RetryStoppedError.
    """
    retry = ApiRetry(backoff, what=what, unavailable=unavailable)
    while True:
        try:
            return call()
        except Exception as exc:
            error = read_error(exc)
            if on_error is not None:
                on_error(error)
            if not error.retryable and error.status not in also_retry:
                raise
            pause = retry.failed(error)
        if stop is None:
            time.sleep(pause)
        elif stop.wait(pause):
            raise RetryStoppedError(f"{what}: stopped while waiting to retry")


def forbidden_message(*, verb: str, resource: str, namespace: str, error: ApiError) -> str:
    """A 403 told as: which verb on which resource where, then the API's own words.

    The API's words name the user and say whether RBAC refused or, say, the namespace is
    being terminated; the prefix makes the refused operation plain in a one-line reason.
    """
    return f"forbidden to {verb} {resource} in namespace {namespace!r}: {error.message}"


def _status_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"message": body.strip()[:1000]}
    return parsed if isinstance(parsed, dict) else {}


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        # HTTP dates are allowed too; the apiserver only sends seconds, so fall back to
        # our own backoff rather than parse a form it never uses.
        return None


def describe_api_exception(exc: BaseException) -> str | None:
    """One line about an API refusal for a log, or None when `exc` is not one.

    The client's own rendering is a multi-line dump of headers and a JSON body with the
    part that matters (the Status message: who may not do what, where) escaped inside
    it. A 403 also says where the fix lies, since it is almost always a missing rule in
    the controller's Role.
    """
    if not isinstance(exc, client.ApiException):
        return None
    error = read_error(exc)
    line = f"the Kubernetes API answered {error.status} {error.reason}: {error.message}"
    if error.status == 403:
        line += " (the controller's Role must grant this; see docs/deploy.md)"
    return line
