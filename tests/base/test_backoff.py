"""The one backoff keeps its floor, its cap and its bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.base.backoff import Backoff


@given(attempt=st.integers(min_value=1, max_value=40), seed=st.integers())
def test_backoff_delay_stays_within_floor_and_cap(attempt: int, seed: int) -> None:
    backoff = Backoff(base=0.2, factor=2, cap=5)
    delay = backoff.delay(attempt, rng=random.Random(seed))
    assert 0.1 <= delay <= 5


def test_backoff_grows_exponentially_until_the_cap() -> None:
    backoff = Backoff(base=1, factor=2, cap=8)
    ceilings = [max(backoff.delay(n, rng=random.Random(s)) for s in range(200)) for n in (1, 2, 3)]
    assert ceilings[0] <= 1 < ceilings[1] <= 2 < ceilings[2] <= 4


def test_backoff_gives_up_after_max_attempts() -> None:
    backoff = Backoff(max_attempts=3)
    assert backoff.next_delay(attempt=2, elapsed=0) is not None
    assert backoff.next_delay(attempt=3, elapsed=0) is None


def test_backoff_gives_up_when_the_pause_would_pass_the_time_bound() -> None:
    backoff = Backoff(base=1, cap=1, max_elapsed=10)
    assert backoff.next_delay(attempt=1, elapsed=9.6) is None


def test_retry_after_is_a_floor_for_the_pause() -> None:
    backoff = Backoff(base=0.2, cap=1, max_elapsed=60)
    assert backoff.next_delay(attempt=1, elapsed=0, retry_after=7) == 7


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    backoff = Backoff(base=1.0, cap=30.0)
    rng = random.Random(7)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (500, 30.0)]:
        delays = {backoff.delay(failures, rng=rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


def test_backoff_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base=10.0, cap=1.0)


def test_an_unbounded_backoff_never_gives_up_and_stays_under_its_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0, max_attempts=None, max_elapsed=None)
    pause = backoff.next_delay(attempt=10_000, elapsed=1e9)
    assert pause is not None
    assert 15.0 <= pause <= 30.0
