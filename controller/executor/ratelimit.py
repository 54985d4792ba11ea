"""Pacing of requests to the API server: a token bucket.

It protects the API server from the controller: it caps the steady request rate while
allowing bursts (client-go's ``--kube-api-qps``/``--kube-api-burst`` model). It hands out
*reservations*: the lock is held only to do arithmetic, never while sleeping, so sixteen
launcher workers waiting for tokens do not serialise behind one sleeper. Retries wait
through :mod:`controller.base.backoff`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Thread-safe token bucket: ``qps`` tokens per second, up to ``burst`` saved up."""

    def __init__(
        self,
        *,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if qps <= 0:
            raise ValueError(f"qps must be positive, got {qps}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._stamp = clock()

    def reserve(self) -> float:
        """Take one token now and return how many seconds the caller must wait to use it.

        Tokens may go negative: that is the queue of callers already promised a slot,
        which keeps the order fair without holding the lock while anyone sleeps.
        """
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.qps

    def acquire(self, *, stop: threading.Event | None = None) -> bool:
        """Block until a token is available; False if ``stop`` was set while waiting."""
        delay = self.reserve()
        if delay <= 0:
            return True
        if stop is None:
            time.sleep(delay)
            return True
        return not stop.wait(delay)


def make_limiter(*, qps: float | None, burst: int) -> TokenBucket | None:
    """A bucket for ``qps``, or None (unlimited) when ``qps`` is None."""
    if qps is None:
        return None
    return TokenBucket(qps=qps, burst=burst)
