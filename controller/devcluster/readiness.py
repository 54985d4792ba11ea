"""Bounded polling with backoff, for "wait until the cluster answers".

Every wait has a deadline and ends with an error that says what was awaited and shows
the component's last log lines, because "timed out" alone sends users hunting.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.base.backoff import Backoff

# Polls start fast (a component often answers within 100 ms) and slow to a second.
POLL_BACKOFF = Backoff(base=0.06, factor=1.5, cap=1.2, max_attempts=None, max_elapsed=None)


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
    polls = 0
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        polls += 1
        time.sleep(POLL_BACKOFF.delay(polls))
