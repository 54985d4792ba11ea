"""The metrics registry: isolated per controller, scrape-time gauges, parseable exposition."""

from __future__ import annotations

import math
import time

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from controller.metrics import Metrics, StateCounts


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        sample: Sample
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_two_controllers_in_one_process_do_not_share_metrics() -> None:
    first, second = Metrics(), Metrics()
    first.pods_launched.labels(outcome="created").inc(3)
    assert samples(first)[("kubedag_pods_launched_total", (("outcome", "created"),))] == 3
    assert ("kubedag_pods_launched_total", (("outcome", "created"),)) not in samples(second)


def test_runs_and_tasks_by_state_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    counts = {"running": 2}
    metrics.set_state_counts_source(
        lambda: StateCounts(runs=dict(counts), tasks={"pending": 5, "launched": 1})
    )
    assert samples(metrics)[("kubedag_dag_runs", (("state", "running"),))] == 2
    counts["running"] = 7
    found = samples(metrics)
    assert found[("kubedag_dag_runs", (("state", "running"),))] == 7
    assert found[("kubedag_task_instances", (("state", "pending"),))] == 5


def test_known_states_are_exported_as_zero_rather_than_missing() -> None:
    metrics = Metrics()
    metrics.set_state_counts_source(StateCounts)
    found = samples(metrics)
    assert found[("kubedag_dag_runs", (("state", "failed"),))] == 0
    assert found[("kubedag_task_instances", (("state", "upstream_failed"),))] == 0


def test_git_sync_age_counts_from_the_last_success() -> None:
    metrics = Metrics()
    metrics.set_git_last_success_source(lambda: time.time() - 42)
    age = samples(metrics)[("kubedag_git_sync_age_seconds", ())]
    assert 42 <= age < 52


def test_git_sync_age_is_infinite_before_the_first_sync() -> None:
    metrics = Metrics()
    metrics.set_git_last_success_source(lambda: None)
    assert math.isinf(samples(metrics)[("kubedag_git_sync_age_seconds", ())])


def test_a_failing_source_leaves_out_only_its_own_families() -> None:
    metrics = Metrics()

    def broken() -> StateCounts:
        raise ConnectionError("database down")

    metrics.set_state_counts_source(broken)
    metrics.set_git_last_success_source(time.time)
    found = samples(metrics)
    assert not any(name == "kubedag_dag_runs" for name, _ in found)
    assert ("kubedag_git_sync_age_seconds", ()) in found
    assert ("kubedag_leader", ()) in found


def test_launch_latency_buckets_tell_10_ms_from_10_s() -> None:
    metrics = Metrics()
    metrics.launch_latency.observe(0.012)
    metrics.launch_latency.observe(9.0)
    found = samples(metrics)
    assert found[("kubedag_launch_latency_seconds_bucket", (("le", "0.01"),))] == 0
    assert found[("kubedag_launch_latency_seconds_bucket", (("le", "0.025"),))] == 1
    assert found[("kubedag_launch_latency_seconds_bucket", (("le", "7.5"),))] == 1
    assert found[("kubedag_launch_latency_seconds_bucket", (("le", "10.0"),))] == 2


def test_api_errors_are_counted_by_status_code() -> None:
    metrics = Metrics()
    metrics.record_api_error(409)
    metrics.record_api_error(409)
    metrics.record_api_error(None)
    found = samples(metrics)
    assert found[("kubedag_kubernetes_api_errors_total", (("code", "409"),))] == 2
    assert found[("kubedag_kubernetes_api_errors_total", (("code", "network"),))] == 1


def test_build_info_names_the_version() -> None:
    found = samples(Metrics(version="9.9.9"))
    assert any(
        name == "kubedag_build_info" and ("version", "9.9.9") in labels for name, labels in found
    )
