"""The metrics observer: what each executor event becomes in the controller's metrics."""

from __future__ import annotations

import pytest

from controller.executor.observer import LaunchStatus
from controller.metrics import Metrics
from controller.process.observing import MetricsObserver
from tests.process.test_metrics import samples


def test_every_launch_outcome_is_exported_at_zero_before_the_first_launch() -> None:
    metrics = Metrics()
    MetricsObserver(metrics)

    found = samples(metrics)

    for status in LaunchStatus:
        assert found[("kubedag_pods_launched_total", (("outcome", status.value),))] == 0


def test_launches_are_counted_by_outcome_and_only_existing_pods_have_a_latency() -> None:
    metrics = Metrics()
    observer = MetricsObserver(metrics)

    observer.pod_launched(LaunchStatus.CREATED, 0.02)
    observer.pod_launched(LaunchStatus.CREATED, 0.03)
    observer.pod_launched(LaunchStatus.ALREADY_EXISTS, 0.01)
    observer.pod_launched(LaunchStatus.REJECTED, 0.5)
    observer.pod_launched(LaunchStatus.GAVE_UP, 20.0)
    found = samples(metrics)

    def launched(outcome: str) -> float:
        return found[("kubedag_pods_launched_total", (("outcome", outcome),))]

    assert [launched(s.value) for s in LaunchStatus] == [2, 1, 1, 1]
    assert found[("kubedag_launch_latency_seconds_count", ())] == 3
    assert found[("kubedag_launch_latency_seconds_sum", ())] == pytest.approx(0.06)
    assert found[("kubedag_launch_latency_seconds_bucket", (("le", "0.05"),))] == 3


def test_watch_restarts_410s_and_api_errors_reach_their_counters() -> None:
    metrics = Metrics()
    observer = MetricsObserver(metrics)

    observer.watch_restarted()
    observer.watch_restarted()
    observer.watch_expired()
    observer.api_error(503)
    observer.api_error(None)
    found = samples(metrics)

    assert found[("kubedag_watch_restarts_total", ())] == 2
    assert found[("kubedag_watch_gone_total", ())] == 1
    assert found[("kubedag_kubernetes_api_errors_total", (("code", "503"),))] == 1
    assert found[("kubedag_kubernetes_api_errors_total", (("code", "network"),))] == 1
