"""A local webhook receiver: answers a scripted list of statuses, then 200, and keeps bodies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.answered: list[int] = []
        self.bodies: list[dict[str, Any]] = []
        self.delivered = threading.Condition()

    def wait_for(self, count: int, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The first `count` bodies answered 200, once they came."""
        with self.delivered:
            if not self.delivered.wait_for(lambda: len(self.bodies) >= count, timeout):
                raise TimeoutError(f"{len(self.bodies)} of {count} notifications came")
            return self.bodies[:count]


@contextmanager
def receiving(tmp_path: Path, statuses: list[int] | None = None) -> Iterator[tuple[Receiver, str]]:
    """A receiver on a free port, and a file holding its URL (as a mounted Secret would)."""
    receiver = Receiver(statuses or [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with receiver.delivered:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.answered.append(status)
                if status == 200:
                    receiver.bodies.append(body)
                    receiver.delivered.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url_file = tmp_path / "webhook-url"
    url_file.write_text(f"http://127.0.0.1:{server.server_address[1]}/hook\n")
    try:
        yield receiver, str(url_file)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
