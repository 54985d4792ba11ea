"""The controller's HTTP face: /healthz, /readyz, /metrics, POST /webhook and the web UI.

Why the standard library's ``ThreadingHTTPServer`` and no framework: four routes do not
need one, and every dependency is another thing to patch. The traps this module avoids:

- A probe that hangs. A readiness check that talks to a stuck database would hang the
  kubelet's probe, and a thread per probe would pile up behind it. Each check runs on a
  worker with a time limit; a check still running from an earlier probe is not started
  again but waited on, so a hanging dependency costs one thread per check, not one per
  probe.
- A client that trickles bytes or sends a huge body. Sockets have a timeout, and the
  webhook body is refused by its Content-Length before a byte of it is read.
- Leaking internals. An exception in a handler is logged with its traceback here and
  answered with a bare 500; clients never see a stack trace.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from controller.metrics import Metrics
from controller.ui import CONTENT_SECURITY_POLICY, PREFIX, ApiHandler, Asset, Reply, load_assets

log = logging.getLogger(__name__)

JSON = "application/json"
# A readiness check answers (ok, detail); detail is one line shown in /readyz.
ReadinessCheck = Callable[[], tuple[bool, str]]
# The webhook handler gets the request headers (case-insensitive) and the raw body and
# answers an HTTP status code and a one-line message for the sender.
WebhookHandler = Callable[[Mapping[str, str], bytes], tuple[int, str]]

DEFAULT_MAX_WEBHOOK_BYTES = 1024 * 1024  # GitHub caps push payloads at 25 MB; ours are small.
MAX_API_BODY_BYTES = 64 * 1024
API_PREFIX = "/api/"


class Headers(Mapping[str, str]):
    """Request headers, looked up case-insensitively as HTTP says they are."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        # A repeated header keeps its first value, as a signature header must not be
        # overridable by a second copy appended later.
        self._values: dict[str, str] = {}
        for key, value in pairs:
            self._values.setdefault(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return self._values[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class _Readiness:
    """Runs the named checks concurrently, each bounded by the same time limit."""

    def __init__(self, *, checks: Mapping[str, ReadinessCheck], timeout: float) -> None:
        self._checks = dict(checks)
        self._timeout = timeout
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, len(self._checks)), thread_name_prefix="readyz"
        )
        self._lock = threading.Lock()
        self._running: dict[str, concurrent.futures.Future[tuple[bool, str]]] = {}

    def run(self) -> list[tuple[str, bool, str]]:
        futures = {name: self._submit(name) for name in self._checks}
        done, _ = concurrent.futures.wait(futures.values(), timeout=self._timeout)
        results = []
        for name, future in futures.items():
            if future not in done:
                results.append((name, False, f"no answer within {self._timeout:g}s"))
                continue
            try:
                ok, detail = future.result()
            except Exception as error:
                log.warning("readiness check %r raised", name, exc_info=True)
                results.append((name, False, f"check raised {type(error).__name__}"))
                continue
            results.append((name, bool(ok), detail))
        return results

    def _submit(self, name: str) -> concurrent.futures.Future[tuple[bool, str]]:
        with self._lock:
            running = self._running.get(name)
            if running is not None and not running.done():
                return running
            future = self._pool.submit(self._checks[name])
            self._running[name] = future
            return future

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class HttpServer:
    """Serves the health, readiness, metrics and webhook routes from a background thread."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        host: str = "0.0.0.0",  # noqa: S104 - probes and scrapes come from outside the pod
        port: int = 8080,
        readiness_checks: Mapping[str, ReadinessCheck] | None = None,
        webhook: WebhookHandler | None = None,
        api: ApiHandler | None = None,
        check_timeout: float = 2.0,
        max_webhook_bytes: int = DEFAULT_MAX_WEBHOOK_BYTES,
        socket_timeout: float = 10.0,
    ) -> None:
        if check_timeout <= 0 or socket_timeout <= 0:
            raise ValueError("check_timeout and socket_timeout must be positive")
        self._readiness = _Readiness(checks=readiness_checks or {}, timeout=check_timeout)
        # Binding here, not in start(), so a taken port fails the controller at startup
        # with the address in the error, and port 0 has a real port to report at once.
        try:
            self._server = _Server(
                (host, port),
                metrics=metrics,
                readiness=self._readiness,
                webhook=webhook,
                api=api,
                max_webhook_bytes=max_webhook_bytes,
                socket_timeout=socket_timeout,
            )
        except OSError as error:
            raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from error
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (the one the OS chose when 0 was asked for)."""
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("HttpServer already started")
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="http-server",
            daemon=True,
        )
        self._thread.start()
        log.info("serving HTTP on %s:%d", self.host, self.port)

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop accepting connections and close the socket; in-flight requests may finish."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._server.server_close()
        self._readiness.close()


class _Server(ThreadingHTTPServer):
    """The listening socket, carrying what the request handlers need."""

    # Request threads must not keep the process alive after shutdown; each is bounded
    # by the socket timeout and the check timeout anyway.
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        *,
        metrics: Metrics,
        readiness: _Readiness,
        webhook: WebhookHandler | None,
        api: ApiHandler | None,
        max_webhook_bytes: int,
        socket_timeout: float,
    ) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self.webhook = webhook
        self.api = api
        self.max_webhook_bytes = max_webhook_bytes
        self.socket_timeout = socket_timeout
        self.assets: dict[str, Asset] = load_assets()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "kubedag"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Bounds every read and write, so a client that stalls mid-request frees its thread.
        self.connection.settimeout(self.server.socket_timeout)

    def do_GET(self) -> None:
        self._guarded(self._route_get)

    def do_POST(self) -> None:
        self._guarded(self._route_post)

    def _route_get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith(API_PREFIX):
            self._api(b"")
        elif path == "/healthz":
            self._reply(HTTPStatus.OK, "ok\n")
        elif path == "/readyz":
            self._readyz()
        elif path == "/metrics":
            body, content_type = self.server.metrics.exposition(self.headers.get("Accept", ""))
            self._reply(HTTPStatus.OK, body, content_type=content_type)
        elif path == "/webhook":
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, "use POST\n", allow="POST")
        elif path in ("/", PREFIX.rstrip("/")):
            self._reply(HTTPStatus.FOUND, "see /ui/\n", location=PREFIX)
        elif path.startswith(PREFIX):
            self._asset(path)
        else:
            self._reply(HTTPStatus.NOT_FOUND, "not found\n")

    def _route_post(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith(API_PREFIX):
            body = self._read_body(MAX_API_BODY_BYTES)
            if body is not None:
                self._api(body)
            return
        if path != "/webhook":
            # The body is unread, so the connection cannot be reused.
            self.close_connection = True
            if path in ("/healthz", "/readyz", "/metrics"):
                self._reply(HTTPStatus.METHOD_NOT_ALLOWED, "use GET\n", allow="GET")
            else:
                self._reply(HTTPStatus.NOT_FOUND, "not found\n")
            return
        self._webhook()

    def _readyz(self) -> None:
        results = self.server.readiness.run()
        failing = [name for name, ok, _ in results if not ok]
        lines = [f"[{'+' if ok else '-'}] {name}: {detail}" for name, ok, detail in results]
        if failing:
            lines.append(f"not ready: {', '.join(failing)}")
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, "\n".join(lines) + "\n")
        else:
            lines.append("ready")
            self._reply(HTTPStatus.OK, "\n".join(lines) + "\n")

    def _asset(self, path: str) -> None:
        asset = self.server.assets.get(path)
        if asset is None:
            self._reply(HTTPStatus.NOT_FOUND, "not found\n")
            return
        self._reply(HTTPStatus.OK, asset.body, content_type=asset.content_type, page=True)

    def _webhook(self) -> None:
        handler = self.server.webhook
        if handler is None:
            self.close_connection = True
            self._reply(HTTPStatus.NOT_FOUND, "webhook not configured\n")
            return
        body = self._read_body(self.server.max_webhook_bytes)
        if body is None:
            return
        status, message = handler(Headers(list(self.headers.items())), body)
        self._reply(HTTPStatus(status), message.rstrip("\n") + "\n")

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or None after answering why it was refused."""
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._reply(HTTPStatus.LENGTH_REQUIRED, "Content-Length required\n")
            return None
        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._reply(HTTPStatus.BAD_REQUEST, "bad Content-Length\n")
            return None
        if length > limit:
            self.close_connection = True
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {limit} bytes\n")
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return None
        return body

    def _api(self, body: bytes) -> None:
        handler = self.server.api
        reply = None
        if handler is not None:
            reply = handler(self.command, self.path, Headers(list(self.headers.items())), body)
        if reply is None:
            self._reply(HTTPStatus.NOT_FOUND, '{"error": "no API here"}\n', content_type=JSON)
        elif isinstance(reply.body, bytes):
            self._reply(
                HTTPStatus(reply.status),
                reply.body,
                content_type=reply.content_type,
                allow=reply.headers.get("Allow"),
            )
        else:
            self._stream(reply)

    def _stream(self, reply: Reply) -> None:
        """Send each piece as an HTTP/1.1 chunk as soon as it is produced.

        A client that goes away makes the write fail, which closes the producer (and so
        the pod log follow behind it) instead of following on for nobody.
        """
        assert not isinstance(reply.body, bytes)
        chunks = reply.body
        self.send_response(HTTPStatus(reply.status))
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _guarded(self, route: Callable[[], None]) -> None:
        try:
            route()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("HTTP handler failed for %s %s", self.command, self.path)
            self.close_connection = True
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")

    def _reply(
        self,
        status: HTTPStatus,
        body: str | bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        allow: str | None = None,
        location: str | None = None,
        page: bool = False,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        # The UI's files change only with the controller's version: the browser revalidates.
        self.send_header("Cache-Control", "no-cache" if page else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if page:
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if allow is not None:
            self.send_header("Allow", allow)
        if location is not None:
            self.send_header("Location", location)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        # Probes arrive every few seconds; at INFO they would drown the controller's logs.
        log.debug("%s %s", self.address_string(), format % args)
