"""A git repository served over smart HTTP by the real `git http-backend`, with a token.

The controller in its pod and the worker pods' init containers reach it as any remote:
by URL, with the token from the `kubedag-git` Secret sent as HTTP basic auth. A request
without the token is answered 401, so a test passes only if the token really travelled.
"""

from __future__ import annotations

import base64
import hmac
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from tests.fixtures.httpserver import QuietHandler, Served

BACKEND_TIMEOUT = 60.0


class GitServer:
    def __init__(self, *, root: Path, host: str, token: str) -> None:
        self.root = root
        self.token = token
        self.requests: list[tuple[str, int]] = []
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                server._serve(self)

            def do_POST(self) -> None:
                server._serve(self)

        self._served = Served(host, Handler)
        self.url_base = self._served.url_base

    def url(self, repository: Path) -> str:
        return f"{self.url_base}/{repository.relative_to(self.root)}"

    def close(self) -> None:
        self._served.close()

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            _, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return hmac.compare_digest(password, self.token)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        if not self._authorized(handler.headers.get("Authorization")):
            self.requests.append((handler.path, 401))
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="kubedag-test"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        env = {
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": handler.command,
            "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query,
            "CONTENT_TYPE": handler.headers.get("Content-Type") or "",
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "kubedag",
            "GIT_PROTOCOL": handler.headers.get("Git-Protocol") or "",
        }
        result = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=env,
            capture_output=True,
            check=False,
            timeout=BACKEND_TIMEOUT,
        )
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode(errors="replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.requests.append((handler.path, status))
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
