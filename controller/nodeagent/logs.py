"""Container logs: captured to files, served over TLS on the node's kubelet port.

The apiserver answers `kubectl logs` and `read_namespaced_pod_log` by proxying to
`https://<node InternalIP>:<kubelet port>/containerLogs/NS/POD/CONTAINER`, so serving
that path is what makes pod logs real for every client. Lines are stored with their
timestamp and stream, as the CRI log format does, so `timestamps=true`, `tailLines` and
`sinceSeconds` can be answered without keeping anything in memory. A follow request
ends when the container has terminated and its log is drained.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import logging
import shutil
import ssl
import threading
import time
from collections import deque
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

log = logging.getLogger(__name__)
FOLLOW_POLL = 0.1


class LogStore:
    """Per-container log files under `root/NAMESPACE/POD/CONTAINER.log`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, namespace: str, pod: str, container: str) -> Path:
        return self.root / namespace / pod / f"{container}.log"

    def reset_pod(self, namespace: str, pod: str) -> None:
        """Forget an earlier pod of the same name (names are reused across incarnations)."""
        shutil.rmtree(self.root / namespace / pod, ignore_errors=True)
        (self.root / namespace / pod).mkdir(parents=True, exist_ok=True)

    def remove_pod(self, namespace: str, pod: str) -> None:
        shutil.rmtree(self.root / namespace / pod, ignore_errors=True)

    def create(self, namespace: str, pod: str, container: str) -> None:
        """An empty log exists from the container's start, so a silent one reads as ""."""
        with contextlib.suppress(FileNotFoundError):
            self.path(namespace, pod, container).touch()

    def append(self, *, namespace: str, pod: str, container: str, stream: str, text: str) -> None:
        path = self.path(namespace, pod, container)
        with self._guard:
            lock = self._locks.setdefault(path, threading.Lock())
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
        stamp = stamp.replace("+00:00", "Z")
        lines = text.splitlines() or [""]
        with lock, contextlib.suppress(FileNotFoundError), open(path, "a") as handle:
            handle.writelines(f"{stamp} {stream} {line}\n" for line in lines)

    def mark_done(self, namespace: str, pod: str, container: str) -> None:
        done = self.path(namespace, pod, container).with_suffix(".done")
        with contextlib.suppress(FileNotFoundError):
            done.touch()

    def is_done(self, namespace: str, pod: str, container: str) -> bool:
        return self.path(namespace, pod, container).with_suffix(".done").exists()

    def tail(self, namespace: str, pod: str, container: str, *, lines: int) -> str:
        """The last `lines` lines of the log, without timestamps (termination fallback)."""
        path = self.path(namespace, pod, container)
        try:
            with open(path) as handle:
                kept = deque(handle, maxlen=lines)
        except FileNotFoundError:
            return ""
        return "".join(_content(line) for line in kept)


def _content(line: str) -> str:
    parts = line.split(" ", 2)
    return parts[2] if len(parts) == 3 else line


def _since_cutoff(query: dict[str, list[str]]) -> str | None:
    if "sinceTime" in query:
        return query["sinceTime"][0]
    if "sinceSeconds" in query:
        moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
            seconds=int(query["sinceSeconds"][0])
        )
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: LogServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("log server: " + format, *args)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["healthz"]:
            self._reply(200, "ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._reply(404, "not found")
            return
        _, namespace, pod, container = parts
        store = self.server.store
        path = store.path(namespace, pod, container)
        if not path.exists():
            self._reply(404, f'container "{container}" in pod "{pod}" has no log yet')
            return
        query = parse_qs(url.query)
        try:
            self._stream(
                path=path, query=query, done=lambda: store.is_done(namespace, pod, container)
            )
        except (BrokenPipeError, ConnectionResetError):
            return

    def _reply(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, *, path: Path, query: dict[str, list[str]], done: object) -> None:
        timestamps = query.get("timestamps", ["false"])[0] == "true"
        follow = query.get("follow", ["false"])[0] == "true"
        tail = int(query["tailLines"][0]) if "tailLines" in query else None
        limit = int(query["limitBytes"][0]) if "limitBytes" in query else None
        cutoff = _since_cutoff(query)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        sent = 0
        with open(path) as handle:
            first = list(handle)
            if cutoff is not None:
                first = [line for line in first if line.split(" ", 1)[0] >= cutoff]
            if tail is not None:
                first = first[-tail:] if tail > 0 else []
            sent = self._write(first, timestamps=timestamps, sent=sent, limit=limit)
            while follow and (limit is None or sent < limit):
                finished = callable(done) and done()
                more = handle.readlines()
                if more:
                    sent = self._write(more, timestamps=timestamps, sent=sent, limit=limit)
                elif finished or self.server.stopping.is_set():
                    return
                else:
                    time.sleep(FOLLOW_POLL)

    def _write(self, lines: list[str], *, timestamps: bool, sent: int, limit: int | None) -> int:
        out = self.wfile
        for line in lines:
            stamp, _, rest = line.partition(" ")
            content = rest.partition(" ")[2]
            text = f"{stamp} {content}" if timestamps else content
            data = text.encode()
            if limit is not None:
                data = data[: max(0, limit - sent)]
            out.write(data)
            sent += len(data)
            if limit is not None and sent >= limit:
                break
        out.flush()
        return sent


class LogServer(http.server.ThreadingHTTPServer):
    """HTTPS server for /containerLogs and /healthz on the kubelet port."""

    daemon_threads = True

    def __init__(
        self, *, store: LogStore, port: int, cert: Path, key: Path, host: str = "127.0.0.1"
    ) -> None:
        super().__init__((host, port), _Handler)
        self.store = store
        self.stopping = threading.Event()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self._thread = threading.Thread(target=self.serve_forever, name="log-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
