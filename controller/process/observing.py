"""The executor's observer that writes what it is told into the controller's metrics.

Why an adapter of its own: the executor reports through its narrow `ExecutorObserver`
Protocol and knows nothing of Prometheus, and `Metrics` knows nothing of launches or
watches. This is the one place that knows both, so what each event means as a metric
(which outcomes have a latency, which label a status becomes) is decided here once.
"""

from __future__ import annotations

from controller.executor.observer import LaunchStatus
from controller.metrics import Metrics


class MetricsObserver:
    """An `ExecutorObserver` (and the leader elector's error hook) over one `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # Every outcome is exported from the start, at 0, so that a rate() or an alert
        # on rejections sees the series before the first rejection instead of nothing.
        for status in LaunchStatus:
            metrics.pods_launched.labels(outcome=status.value)

    def pod_launched(self, outcome: LaunchStatus, latency_seconds: float) -> None:
        self._metrics.pods_launched.labels(outcome=outcome.value).inc()
        # Only a pod that exists has a launch latency; how long a refusal took is not one.
        if outcome.launched:
            self._metrics.launch_latency.observe(latency_seconds)

    def watch_restarted(self) -> None:
        self._metrics.watch_restarts.inc()

    def watch_expired(self) -> None:
        self._metrics.watch_gone.inc()

    def api_error(self, status: int | None) -> None:
        self._metrics.record_api_error(status)
