"""The one API retry: transient failures are retried within the bounds, final ones are not."""

from __future__ import annotations

import threading

import pytest
import urllib3
from kubernetes import client

from controller.base.backoff import Backoff
from controller.executor.kubeclient import (
    ApiError,
    ApiUnavailableError,
    RetryStoppedError,
    retry_call,
)

QUICK = Backoff(base=0.001, cap=0.002, max_attempts=3, max_elapsed=5.0)


class Failing:
    """A call that raises the given exceptions in turn, then answers "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def refusal(status: int) -> client.ApiException:
    return client.ApiException(status=status, reason="Refused")


def test_a_dropped_connection_is_retried_and_every_failure_is_seen() -> None:
    call = Failing(urllib3.exceptions.ProtocolError("reset"), refusal(503))
    seen: list[ApiError] = []
    assert retry_call(call, backoff=QUICK, what="reading", on_error=seen.append) == "done"
    assert call.calls == 3
    assert [error.status for error in seen] == [None, 503]


def test_a_final_refusal_is_raised_as_the_client_raised_it() -> None:
    call = Failing(refusal(422))
    with pytest.raises(client.ApiException) as raised:
        retry_call(call, backoff=QUICK, what="patching")
    assert raised.value.status == 422
    assert call.calls == 1


def test_a_status_named_as_transient_is_retried() -> None:
    call = Failing(refusal(409))
    assert retry_call(call, backoff=QUICK, what="patching", also_retry=frozenset({409})) == "done"


def test_giving_up_names_the_call_and_the_last_error() -> None:
    call = Failing(*(refusal(503) for _ in range(5)))
    with pytest.raises(ApiUnavailableError, match=r"gave up deleting pod a after 3 attempts"):
        retry_call(call, backoff=QUICK, what="deleting pod a")
    assert call.calls == 3


def test_a_bug_in_the_call_is_not_retried() -> None:
    call = Failing(TypeError("ours"))
    with pytest.raises(TypeError):
        retry_call(call, backoff=QUICK, what="reading")
    assert call.calls == 1


def test_a_set_stop_event_ends_the_wait() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(RetryStoppedError):
        retry_call(Failing(refusal(503)), backoff=QUICK, what="creating pod a", stop=stop)
