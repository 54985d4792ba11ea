"""Trigger -> first pod: from the commit of a manual run to its first pod's creation.

`kubedag trigger` writes a queued run and exits; the controller, another process, must
notice it, start the run and create its first pod. This measures that, per database:
a controller process (``benchmarks.engine_process``: engine and Kubernetes executor)
runs apart from the benchmark, which queues runs with ``trigger_run`` (what the command
calls) on a connection of its own and watches for each run's first pod. A run's
latency is from the return of ``trigger_run`` (its transaction committed) to the
arrival of its pod's ADDED event, so it counts the controller's whole path: noticing
(LISTEN/NOTIFY on PostgreSQL, the poll on SQLite), starting the run, writing its first
try, creating the pod, and the watch's delivery.

The baseline, measured in the same run the same way, is the floor: a bare client
posting one pod and waiting for the same watch to report it. Triggers are spaced by a
random gap as long as the poll, so they do not fall in step with it.

Usage: ``python -m benchmarks.bench_trigger [--triggers 50] [--backend postgresql
--backend sqlite]``. PostgreSQL: a throwaway database on the server of
$KUBEDAG_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
Runs a local cluster of its own (``benchmarks.clusters``; ports from 28643), so that no
other session's fault test restarts its apiserver under the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client

from benchmarks.bench_launch import fresh_namespace
from benchmarks.bench_launch import pod as minimal_pod
from benchmarks.clusters import BENCH, own_cluster
from benchmarks.databases import ROOT, database
from controller.executor.kubeclient import make_api_client, post_json
from controller.executor.watchstream import PodWatch, list_pods
from controller.runtime.engine import POLL_SECONDS
from controller.runtime.manual import trigger_run
from controller.spec.model import Dag, Task, dag_to_dict
from controller.store import Store

SCRIPTED = {"annotations": {"agent.kubedag.io/mode": "scripted"}}
POD_TIMEOUT_SECONDS = 15.0
START_TIMEOUT_SECONDS = 120.0


BENCH_LABEL = "kubedag.io/bench-trigger"


class FirstPods:
    """The arrival time of the first ADDED event per value of one annotation."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str,
        *,
        key: str,
        selector: str = BENCH_LABEL,
    ) -> None:
        _, version = list_pods(api, namespace=namespace, label_selector=selector)
        self._key = key
        self._cond = threading.Condition()
        self.first: dict[str, float] = {}
        self.added: Counter[str] = Counter()
        self.resource_version = int(version)
        self._watch = PodWatch(
            api, namespace=namespace, label_selector=selector, resource_version=version
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self._watch:
            if event.type != "ADDED" or event.pod is None:
                continue
            seen = time.time()
            value = str((event.pod["metadata"].get("annotations") or {}).get(self._key))
            with self._cond:
                self.first.setdefault(value, seen)
                self.added[value] += 1
                self.resource_version = int(event.resource_version)
                self._cond.notify_all()

    def wait(self, value: str, *, timeout: float) -> float:
        with self._cond:
            if not self._cond.wait_for(lambda: value in self.first, timeout):
                raise RuntimeError(f"no pod for {self._key}={value} after {timeout}s")
            return self.first[value]

    def wait_count(self, value: str, count: int, *, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.added[value] >= count, timeout):
                raise RuntimeError(f"{self.added[value]} pods for {value}, not {count}")

    def stop(self) -> None:
        self._watch.stop()


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p95 and max, in milliseconds."""
    p95 = statistics.quantiles(values, n=20)[-1]
    return statistics.median(values) * 1000, p95 * 1000, max(values) * 1000


def gap() -> None:
    """A random pause longer than the engine's poll, so triggers land anywhere in it."""
    time.sleep(random.uniform(0.05, POLL_SECONDS + 0.05))


def bare_latencies(kubeconfig: str, namespace: str, count: int) -> list[float]:
    """One pod at a time, posted raw: the time until the watch reports it."""
    with make_api_client(kubeconfig=kubeconfig) as api:
        pods = FirstPods(api, namespace, key="bench/index")
        try:
            latencies = []
            for index in range(count):
                body = minimal_pod(f"bare-{index}", annotations={"bench/index": str(index)})
                body["metadata"]["labels"][BENCH_LABEL] = "bare"
                posted = time.time()
                post_json(api, f"/api/v1/namespaces/{namespace}/pods", body).release_conn()
                latencies.append(pods.wait(str(index), timeout=POD_TIMEOUT_SECONDS) - posted)
                gap()
            return latencies
        finally:
            pods.stop()


@contextmanager
def controller(
    url: str, namespace: str, kubeconfig: str, *, trace: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    process = start_controller(url, namespace, kubeconfig, trace=trace)
    try:
        started_line(process)
        yield process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def start_controller(
    url: str,
    namespace: str,
    kubeconfig: str,
    *,
    pod_template: Path | None = None,
    parallelism: int | None = None,
    trace: Path | None = None,
) -> subprocess.Popen[str]:
    """``benchmarks.engine_process`` on `url`, launching into `namespace`."""
    argv = [
        sys.executable,
        "-m",
        "benchmarks.engine_process",
        f"--database-url={url}",
        f"--namespace={namespace}",
        f"--kubeconfig={kubeconfig}",
    ]
    if pod_template is not None:
        argv.append(f"--pod-template={pod_template}")
    if parallelism is not None:
        argv.append(f"--parallelism={parallelism}")
    if trace is not None:
        argv.append(f"--trace={trace}")
    return subprocess.Popen(
        argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def started_line(process: subprocess.Popen[str]) -> tuple[float, float]:
    """Wait for the process's ``started`` line: (when Engine.start was called, its seconds)."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("started"):
        raise RuntimeError(f"the controller process did not start: {line!r}")
    _, when, took = line.split()
    return float(when), float(took)


def one_task_dag() -> Dag:
    return Dag(
        name="bench-trigger",
        max_active_runs=10_000,
        max_active_tasks=10_000,
        tasks=(
            Task(
                name="first",
                image="busybox:1.36",
                command=("true",),
                checkout=False,
                pod_overrides={
                    **SCRIPTED,
                    "labels": {BENCH_LABEL: "kubedag"},
                },
            ),
        ),
    )


@dataclass(frozen=True)
class Triggered:
    run_id: int
    committed: float
    created: float


def trigger_latencies(
    url: str, kubeconfig: str, namespace: str, count: int, *, trace: Path
) -> list[Triggered]:
    dag = one_task_dag()
    store = Store.connect(url)
    try:
        with store.transaction() as uow:
            uow.upsert_dag(
                name=dag.name,
                path=f"{dag.name}.yaml",
                revision="0" * 40,
                spec_hash=dag.name,
                spec=dag_to_dict(dag),
            )
        with (
            make_api_client(kubeconfig=kubeconfig) as api,
            controller(url, namespace, kubeconfig, trace=trace),
        ):
            pods = FirstPods(api, namespace, key="kubedag.io/run-id")
            try:
                latencies = []
                for _ in range(count):
                    run = trigger_run(store, dag_name=dag.name, params={})
                    committed = time.time()
                    created = pods.wait(str(run.id), timeout=POD_TIMEOUT_SECONDS)
                    latencies.append(Triggered(run.id, committed, created))
                    gap()
                return latencies
            finally:
                pods.stop()
    finally:
        store.close()


STEPS = (
    ("commit -> woken", "notified"),
    # Starting the run and claiming its first try is one transaction, whose orders are
    # handed out when it commits.
    ("woken -> started, orders handed", "handed"),
    ("handed -> create sent", "post"),
    ("create sent -> answered", "posted"),
)


def breakdown(triggered: list[Triggered], trace: Path) -> dict[str, list[float]]:
    """Per step of the path, each run's seconds in it (from the controller's trace).

    A step a run's trace lacks (no notification on SQLite: the poll woke it) is timed
    from the step before; "answered -> ADDED" is the watch's delivery.
    """
    events = [json.loads(line) for line in trace.read_text().splitlines() if line]
    notified = sorted(e["t"] for e in events if e["event"] == "notified")
    first: dict[tuple[str, str], float] = {}
    for e in events:
        if e["event"] in ("started", "handed"):
            for run in e["runs"]:
                first.setdefault((e["event"], str(run)), e["t"])
        elif e["event"] in ("post", "posted"):
            first.setdefault((e["event"], str(e["run"])), e["t"])
    steps: dict[str, list[float]] = {name: [] for name, _ in STEPS}
    steps["answered -> ADDED"] = []
    for one in triggered:
        at = one.committed
        for name, event in STEPS:
            if event == "notified":
                woken = next((t for t in notified if t >= one.committed), None)
                if woken is None or woken > first.get(("handed", str(one.run_id)), woken):
                    continue
                when: float | None = woken
            else:
                when = first.get((event, str(one.run_id)))
            if when is None:
                continue
            steps[name].append(max(0.0, when - at))
            at = when
        steps["answered -> ADDED"].append(max(0.0, one.created - at))
    return {name: values for name, values in steps.items() if len(values) >= 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=50, help="triggers per backend")
    parser.add_argument(
        "--backend", action="append", choices=["postgresql", "sqlite"], dest="backends"
    )
    args = parser.parse_args(argv)
    backends = args.backends or ["postgresql", "sqlite"]
    load = os.getloadavg()[0]
    results: dict[str, list[float]] = {}
    steps: dict[str, dict[str, list[float]]] = {}
    with (
        own_cluster(*BENCH) as cluster,
        make_api_client(kubeconfig=str(cluster.kubeconfig)) as admin,
    ):
        kubeconfig = str(cluster.kubeconfig)
        core = kubernetes.client.CoreV1Api(admin)
        with fresh_namespace(core) as namespace:
            results["bare create -> ADDED"] = bare_latencies(kubeconfig, namespace, args.triggers)
        for backend in backends:
            with (
                tempfile.TemporaryDirectory() as scratch,
                database(backend, Path(scratch)) as url,
                fresh_namespace(core) as namespace,
            ):
                trace = Path(scratch) / "trace.jsonl"
                triggered = trigger_latencies(
                    url, kubeconfig, namespace, args.triggers, trace=trace
                )
                results[f"trigger -> first pod, {backend}"] = [
                    one.created - one.committed for one in triggered
                ]
                steps[backend] = breakdown(triggered, trace)
    floor = statistics.median(results["bare create -> ADDED"])
    print(f"{args.triggers} each; load average at start {load:.1f} (2 cores)")
    print(f"  {'':<36} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p50/floor':>10}")
    for name, values in results.items():
        p50, p95, most = percentiles(values)
        ratio = statistics.median(values) / floor
        print(f"  {name:<36} {p50:8.0f} {p95:8.0f} {most:8.0f} {ratio:10.1f}")
    print("targets on PostgreSQL: p50 < 100 ms, p95 < 250 ms")
    for backend, by_step in steps.items():
        print(f"where the time went, {backend} (controller trace):")
        for name, values in by_step.items():
            p50, p95, most = percentiles(values)
            print(f"  {name:<36} {p50:8.1f} {p95:8.1f} {most:8.1f}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
