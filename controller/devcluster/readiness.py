"""Bounded polling with backoff, for "wait until the cluster answers".

Every wait has a deadline and ends with an error that says what was awaited and shows
the component's last log lines, because "timed out" alone sends users hunting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class ClusterError(RuntimeError):
    """The local cluster could not be started, reached or changed."""


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    detail: Callable[[], str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311
        delay = min(delay * 1.5, 1.0)
