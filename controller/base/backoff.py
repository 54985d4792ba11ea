"""The one retry backoff: exponential, with "equal jitter", and optional bounds.

Every retry loop of the project waits through this, so the policy is decided once. The
pause before retry ``n`` (1-based) lies in ``[c/2, c]`` with ``c = min(cap, base *
factor**(n-1))``: the random half keeps a fleet of clients that failed together from
retrying in step, and the fixed half keeps a pause from coming out near zero and
hammering a server that is already struggling.

A loop that must give up sets ``max_attempts`` and/or ``max_elapsed`` and asks
``next_delay``, which answers None once a bound is spent. A loop that must never stop
(following a git repository, keeping a watch open) leaves both None and asks ``delay``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with equal jitter, bounded by attempts and/or total time."""

    base: float = 0.2
    factor: float = 2.0
    cap: float = 10.0
    max_attempts: int | None = 8
    max_elapsed: float | None = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be at least 1, got {self.factor}")

    def ceiling(self, attempt: int) -> float:
        """The longest pause before retry ``attempt`` (1-based)."""
        # The exponent is capped so a loop that has failed for days cannot overflow.
        exponent = min(max(attempt, 1) - 1, 64)
        return min(self.cap, self.base * self.factor**exponent)

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """The pause before retry ``attempt`` (1-based): uniform in half to all of its ceiling."""
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + (rng or _RNG).uniform(0, ceiling / 2)

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
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        pause = self.delay(attempt, rng=rng)
        if retry_after is not None:
            pause = max(pause, retry_after)
        if self.max_elapsed is not None and elapsed + pause > self.max_elapsed:
            return None
        return pause


# Jitter only spreads retries in time; it needs no cryptographic strength.
_RNG = random.Random()  # noqa: S311
