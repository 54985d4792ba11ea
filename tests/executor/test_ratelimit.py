"""The token bucket keeps its rate and burst under threads."""

from __future__ import annotations

import threading
import time

import pytest

from controller.executor.ratelimit import TokenBucket, make_limiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_is_free_then_callers_wait_one_interval_each() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)


def test_tokens_refill_with_time_but_never_beyond_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=2, clock=clock)
    bucket.reserve()
    bucket.reserve()
    clock.now += 60
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.0]
    assert bucket.reserve() > 0


def test_threads_together_do_not_exceed_the_rate() -> None:
    bucket = TokenBucket(qps=200, burst=1)
    done: list[float] = []
    lock = threading.Lock()

    def take(n: int) -> None:
        for _ in range(n):
            bucket.acquire()
            with lock:
                done.append(time.monotonic())

    start = time.monotonic()
    threads = [threading.Thread(target=take, args=(25,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    assert len(done) == 100
    # 100 tokens at 200/s with a burst of 1 need at least 99 intervals of 5 ms.
    assert elapsed >= 0.99 * 99 / 200


def test_acquire_returns_false_when_stopped_while_waiting() -> None:
    bucket = TokenBucket(qps=0.1, burst=1)
    bucket.reserve()
    stop = threading.Event()
    stop.set()
    assert bucket.acquire(stop=stop) is False


def test_no_qps_means_no_limiter() -> None:
    assert make_limiter(qps=None, burst=10) is None
    limiter = make_limiter(qps=5, burst=10)
    assert limiter is not None
    assert limiter.qps == 5


@pytest.mark.parametrize(("qps", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_nonsense_limits_are_refused(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(qps=qps, burst=burst)
