"""Pacing of requests to the API server: a token bucket and a retry backoff.

Both exist to protect the API server from the controller. The token bucket caps the
steady request rate while allowing bursts (client-go's ``--kube-api-qps``/``--kube-api-burst``
model). It hands out *reservations*: the lock is held only to do arithmetic, never while
sleeping, so sixteen launcher workers waiting for tokens do not serialise behind one sleeper.

The backoff is exponential with full jitter and two bounds (attempts and total time), so a
fleet of controllers retrying after an outage does not hammer the server in lockstep, and
no retry loop runs forever.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, bounded by attempts and by total time.

    ``delay(n)`` is the pause before retry number ``n`` (1-based): uniform in
    ``[base/2, min(cap, base * factor**(n-1))]``; the floor keeps retries from bunching at
    zero, the jitter keeps many clients from retrying in step.
    """

    base: float = 0.2
    factor: float = 2.0
    cap: float = 10.0
    max_attempts: int = 8
    max_elapsed: float = 60.0

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        floor = min(self.base / 2, ceiling)
        return (rng or _RNG).uniform(floor, ceiling)

    def next_delay(
        self,
        *,
        attempt: int,
        elapsed: float,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Pause before the next try after ``attempt`` failed tries, or None to give up.

        A server's Retry-After is a floor (it knows its own load); the bounds still hold.
        """
        if attempt >= self.max_attempts:
            return None
        pause = self.delay(attempt, rng=rng)
        if retry_after is not None:
            pause = max(pause, retry_after)
        if elapsed + pause > self.max_elapsed:
            return None
        return pause


# Jitter only spreads retries in time; it needs no cryptographic strength.
_RNG = random.Random()  # noqa: S311
