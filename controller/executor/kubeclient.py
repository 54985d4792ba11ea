"""One Kubernetes API client for the whole controller, and how to read its failures.

Why a module of its own: the Python client's defaults are wrong for a controller. Its
connection pool holds ``5 * cpu_count`` connections (10 on a 2-core node), so a launcher
with 16 workers would open and discard a TLS connection per request; it sets no request
timeout, so a half-dead connection hangs a thread forever; and urllib3's own silent retries
would hide failures from the backoff we control. Here the pool is sized for the launcher,
every call gets an explicit ``(connect, read)`` timeout, TCP keepalive guards long watches,
and retrying is left to the callers, which back off with jitter and give up with a reason.

It also holds the one place that decides what an error means: retryable (429, 5xx,
timeouts, dropped connections) or final, with the API's own ``Status`` message.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
import urllib3
from kubernetes import client, config

DEFAULT_POOL_MAXSIZE = 32
# (connect, read) seconds for ordinary request/response calls.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


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
