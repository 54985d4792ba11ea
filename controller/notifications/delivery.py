"""Posting a notification: one timeout per attempt, bounded retries with the project's backoff.

A receiver answering 5xx or 429, or not answering at all, is tried again after a
jittered, growing pause, until the attempts or the time allowed are spent; a 4xx other
than 429 means the request itself is wrong (a revoked webhook URL) and is not retried.
The URL is read from its file at each delivery, so a rotated Secret takes effect without
a restart, and it never appears in a log line or an error: it is a credential.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller import __version__
from controller.base.backoff import Backoff

DELIVERY_BACKOFF = Backoff(base=1.0, factor=2.0, cap=30.0, max_attempts=6, max_elapsed=120.0)


class DeliveryError(RuntimeError):
    """The notification was not delivered; the message says why (without the URL)."""


def read_url(path: str) -> str:
    try:
        url = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise DeliveryError(f"cannot read the webhook URL file {path}: {error.strerror}") from None
    if not url.startswith(("https://", "http://")):
        raise DeliveryError(f"the webhook URL file {path} does not hold an http(s) URL")
    return url


def post(url: str, body: dict[str, Any], *, timeout: float) -> int:
    """POST `body` as JSON; the HTTP status (an error status is returned, not raised)."""
    request = urllib.request.Request(  # noqa: S310 - the URL is checked to be http(s)
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": f"kubedag/{__version__}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def deliver(
    url_file: str,
    body: dict[str, Any],
    *,
    timeout: float,
    backoff: Backoff = DELIVERY_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Deliver `body` to the receiver whose URL is in `url_file`; the attempts it took."""
    url = read_url(url_file)
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            status = post(url, body, timeout=timeout)
            problem = f"the receiver answered {status}"
        except (urllib.error.URLError, OSError) as error:
            status = 0
            problem = f"the receiver did not answer: {getattr(error, 'reason', error)}"
        if 200 <= status < 300:
            return attempt
        if 400 <= status < 500 and status != 429:
            raise DeliveryError(f"{problem}; not retried (a 4xx means the request is refused)")
        pause = backoff.next_delay(attempt=attempt, elapsed=time.monotonic() - started)
        if pause is None:
            raise DeliveryError(f"{problem}; gave up after {attempt} attempts")
        sleep(pause)
