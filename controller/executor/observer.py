"""What the executor tells whoever watches it: launch outcomes, watch trouble, API failures.

Why an observer instead of metrics here: the executor sits below the controller process
and must not know Prometheus (benchmarks and tests build it without a registry), and the
counters it keeps as attributes are only read by tests. So each part that meets an event
calls one method of a narrow Protocol, on the thread where it happens, and the process
layer turns the calls into metrics. Calls must return at once and never raise: they run
on launcher workers and watch threads. The default observer does nothing.
"""

from __future__ import annotations

import enum
from typing import Protocol


class LaunchStatus(enum.StrEnum):
    CREATED = "created"
    ALREADY_EXISTS = "already_exists"  # adopted: an earlier attempt created it
    REJECTED = "rejected"  # the API refused the pod for good; message says why
    GAVE_UP = "gave_up"  # retries exhausted or the launcher stopped; message says why

    @property
    def launched(self) -> bool:
        """The pod exists now: the try is LAUNCHED and the watch will report on it."""
        return self in (LaunchStatus.CREATED, LaunchStatus.ALREADY_EXISTS)


class ExecutorObserver(Protocol):
    def pod_launched(self, outcome: LaunchStatus, latency_seconds: float) -> None:
        """One try's launch ended with ``outcome``, this long after the executor got it."""
        ...

    def watch_restarted(self) -> None:
        """A pod watch failed and was started again (from its cursor, or after a pause)."""
        ...

    def watch_expired(self) -> None:
        """The API server answered 410 Gone to a watch: the namespace is listed again."""
        ...

    def api_error(self, status: int | None) -> None:
        """A Kubernetes API call failed with HTTP ``status``; None when no answer came back."""
        ...


class NullObserver:
    """Observes nothing: for executors built without a controller around them."""

    def pod_launched(self, outcome: LaunchStatus, latency_seconds: float) -> None:
        return None

    def watch_restarted(self) -> None:
        return None

    def watch_expired(self) -> None:
        return None

    def api_error(self, status: int | None) -> None:
        return None


NO_OBSERVER: ExecutorObserver = NullObserver()
