"""A local webhook receiver: answers a scripted list of statuses, then 200, and keeps bodies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.fixtures.httpserver import QuietHandler, Served


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

    class Handler(QuietHandler):
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

    served = Served("127.0.0.1", Handler)
    url_file = tmp_path / "webhook-url"
    url_file.write_text(f"{served.url_base}/hook\n")
    try:
        yield receiver, str(url_file)
    finally:
        served.close()
