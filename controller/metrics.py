"""The controller's Prometheus metrics, defined once and owned by one registry per controller.

Why a class with its own ``CollectorRegistry`` instead of module-level metrics on the
global registry: the global registry is process-wide, so two controllers in one process
(the handover tests run two) or two tests in a row would collide with "Duplicated
timeseries" errors, or worse, silently share counters. Every part of the controller gets
the one ``Metrics`` object it should write to.

Why some values are computed at scrape time: "runs by state" is a fact of the database,
and "git sync age" grows every second without anyone writing it. Keeping such gauges up
to date by pushing would mean another loop that can stall and lie; asking a callable at
scrape time means the number is as fresh as the scrape. The callables are wired later by
the controller (``set_state_counts_source``, ``set_git_last_success_source``), because
the metrics exist before the database and git-sync do. A source that fails is logged and
its families are left out of that scrape, so one broken source never hides the others.
"""

from __future__ import annotations

import logging
import math
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller import __version__
from controller.base.states import DagRunState, TaskState
from controller.store.records import DagRunRecord, TaskInstanceRecord

log = logging.getLogger(__name__)

# From a launch that waits on a busy API server (seconds) down to an idle one (10 ms);
# fine steps below 1 s, where a healthy launcher lives.
LAUNCH_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
)


# Task tries and runs take from seconds to a day; alerting cares about the order of size.
DURATION_BUCKETS: tuple[float, ...] = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    43200.0,
    86400.0,
)


@dataclass(frozen=True)
class StateCounts:
    """How many DagRuns and TaskInstances are in each state, as the database says now."""

    runs: Mapping[str, int] = field(default_factory=dict)
    tasks: Mapping[str, int] = field(default_factory=dict)
    oldest_pending_since: float | None = None
    """Unix time the oldest pod still waiting to start was created (None: none waits)."""


StateCountsSource = Callable[[], StateCounts]
# Unix time (seconds) of the last successful git sync, or None before the first one.
LastSuccessSource = Callable[[], float | None]


class Metrics:
    """Every metric the controller exports, registered on a registry of its own."""

    def __init__(self, *, version: str = __version__) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.launch_latency = Histogram(
            "kubedag_launch_latency_seconds",
            "Seconds from the executor receiving a try to the API server creating (or "
            "finding) its pod.",
            buckets=LAUNCH_LATENCY_BUCKETS,
            registry=r,
        )
        self.pods_launched = Counter(
            "kubedag_pods_launched",
            "Launches by outcome: created, already_exists (adopted), rejected, gave_up.",
            ["outcome"],
            registry=r,
        )
        self.watch_restarts = Counter(
            "kubedag_watch_restarts",
            "Times a pod watch failed and was started again.",
            registry=r,
        )
        self.watch_gone = Counter(
            "kubedag_watch_gone",
            "Times the API server answered 410 Gone to the pod watch, forcing a re-list.",
            registry=r,
        )
        self.git_sync_errors = Counter(
            "kubedag_git_sync_errors",
            "Failed git fetches or checkouts.",
            registry=r,
        )
        self.invalid_dags = Gauge(
            "kubedag_invalid_dags",
            "DAG files at the synced commit that failed validation.",
            registry=r,
        )
        self.api_errors = Counter(
            "kubedag_kubernetes_api_errors",
            "Failed Kubernetes API calls by HTTP status code ('network' when none came back).",
            ["code"],
            registry=r,
        )
        self.leader = Gauge(
            "kubedag_leader",
            "1 while this replica holds the leader lease, else 0.",
            registry=r,
        )
        # Labelled by DAG (bounded by the repository) and outcome, never by run: alerting
        # on "this DAG fails" or "this DAG got slow" without a series per run.
        self.run_outcomes = Counter(
            "kubedag_dag_runs_finished",
            "Runs that ended, by DAG and state (succeeded, failed, cancelled).",
            ["dag", "state"],
            registry=r,
        )
        self.run_duration = Histogram(
            "kubedag_dag_run_duration_seconds",
            "From a run's start to its end, by DAG and state.",
            ["dag", "state"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.try_outcomes = Counter(
            "kubedag_task_tries_finished",
            "Task tries that ended, by DAG and state (succeeded, failed).",
            ["dag", "state"],
            registry=r,
        )
        self.try_duration = Histogram(
            "kubedag_task_try_duration_seconds",
            "From a try's start (its main container running) to its end, by DAG and state.",
            ["dag", "state"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.build_info = Info("kubedag_build", "Version of the running controller.", registry=r)
        self.build_info.info({"version": version, "python": platform.python_version()})
        self._scrape_time = _ScrapeTimeCollector()
        r.register(self._scrape_time)

    def set_state_counts_source(self, source: StateCountsSource) -> None:
        """Wire the callable asked at every scrape for runs and tasks by state."""
        self._scrape_time.state_counts = source

    def set_git_last_success_source(self, source: LastSuccessSource) -> None:
        """Wire the callable asked at every scrape for the time of the last good sync."""
        self._scrape_time.git_last_success = source

    def run_finished(self, run: DagRunRecord) -> None:
        """Count a run that ended, and how long it ran."""
        state = run.state.value
        self.run_outcomes.labels(dag=run.dag_name, state=state).inc()
        if run.started_at is not None and run.finished_at is not None:
            seconds = (run.finished_at - run.started_at).total_seconds()
            self.run_duration.labels(dag=run.dag_name, state=state).observe(max(0.0, seconds))

    def tries_finished(self, records: Iterable[TaskInstanceRecord]) -> None:
        """Count task tries that ended, and how long each ran."""
        for record in records:
            if not record.state.finished:
                continue
            labels = {"dag": record.dag_name, "state": record.state.value}
            self.try_outcomes.labels(**labels).inc()
            if record.started_at is not None and record.finished_at is not None:
                seconds = (record.finished_at - record.started_at).total_seconds()
                self.try_duration.labels(**labels).observe(max(0.0, seconds))

    def record_api_error(self, status: int | None) -> None:
        """Count one failed Kubernetes API call; None means no HTTP answer came back."""
        self.api_errors.labels(code="network" if status is None else str(status)).inc()

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry rendered for a scrape, in the format the Accept header asks for."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class _ScrapeTimeCollector(Collector):
    """Builds the gauges whose values are asked for at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state_counts: StateCountsSource | None = None
        self._git_last_success: LastSuccessSource | None = None

    @property
    def state_counts(self) -> StateCountsSource | None:
        with self._lock:
            return self._state_counts

    @state_counts.setter
    def state_counts(self, source: StateCountsSource) -> None:
        with self._lock:
            self._state_counts = source

    @property
    def git_last_success(self) -> LastSuccessSource | None:
        with self._lock:
            return self._git_last_success

    @git_last_success.setter
    def git_last_success(self, source: LastSuccessSource) -> None:
        with self._lock:
            self._git_last_success = source

    def describe(self) -> Iterable[Metric]:
        # Returning nothing keeps registration from calling the sources before they exist.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._collect_state_counts()
        yield from self._collect_git_sync_age()

    def _collect_state_counts(self) -> Iterator[Metric]:
        source = self.state_counts
        if source is None:
            return
        try:
            counts = source()
        except Exception:
            log.exception("state counts source failed; runs and tasks left out of this scrape")
            return
        yield _by_state(
            "kubedag_dag_runs",
            "DagRuns in each state.",
            known=[s.value for s in DagRunState],
            counts=counts.runs,
        )
        yield _by_state(
            "kubedag_task_instances",
            "Task instances (one per try) in each state.",
            known=[s.value for s in TaskState],
            counts=counts.tasks,
        )
        since = counts.oldest_pending_since
        yield GaugeMetricFamily(
            "kubedag_oldest_pending_pod_seconds",
            "Seconds the oldest pod still waiting to start has waited (0 when none waits).",
            value=0.0 if since is None else max(0.0, time.time() - since),
        )

    def _collect_git_sync_age(self) -> Iterator[Metric]:
        source = self.git_last_success
        if source is None:
            return
        try:
            last = source()
        except Exception:
            log.exception("git last-success source failed; sync age left out of this scrape")
            return
        # +Inf before the first sync, so an alert on "age > N" fires for a controller that
        # has never synced instead of staying silent on an absent series.
        age = math.inf if last is None else max(0.0, time.time() - last)
        yield GaugeMetricFamily(
            "kubedag_git_sync_age_seconds",
            "Seconds since the last successful git sync (+Inf before the first).",
            value=age,
        )


def _by_state(name: str, doc: str, *, known: list[str], counts: Mapping[str, int]) -> Metric:
    # Known states are always present (0 when empty) so that rate() and alerts see a
    # series drop to zero instead of vanishing.
    family = GaugeMetricFamily(name, doc, labels=["state"])
    for state in [*known, *sorted(set(counts) - set(known))]:
        family.add_metric([state], float(counts.get(state, 0)))
    return family
