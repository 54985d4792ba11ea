"""The whole pipeline's speed: engine, executor, watch and store, against a bare client loop.

bench_launch measures the Launcher alone; here pods are launched by the engine as runs
advance, completed by the node agent (scripted, no processes), reported through the
watch into the store, and cleaned up (logs copied, finalizer removed, pod deleted), all
with kubedag's defaults. Two numbers matter:

- launch throughput: a root task, then a withItems fan-out of N items, all ready at
  once; pods/s is N over the time from the first to the last fan-out pod the API server
  reports created (a watch here records ADDED events, independently of kubedag), set
  beside a bare 8-thread create loop of N pods measured in the same run on the same
  server, the same way (first to last ADDED, seen by the same kind of watch). The bare
  loop posts each pod's JSON with no client-side work (no generated client, whose model
  round trip would slow the baseline down), so it shows what the server can take. It
  runs twice: with exactly the pods kubedag builds for the fan-out (init container,
  labels, security context; only the finalizer left out, so its namespace can go), the
  ratio the target is about; and with minimal one-container pods, for a ratio that also
  counts what kubedag's richer pod costs the server. Both loops run before and after
  the pipeline, and the baseline is the mean of the two, so a server (or a shared
  machine) that slows or speeds up over the run favours neither side. The node agent treats all pods
  alike (scripted). Each bare loop's namespace is deleted, and gone, before the next
  measurement starts, so none pays for another's pods;
- the hop: in a chain of tasks, the time from "upstream succeeded" (the commit of its
  result, from the event log's timestamp) to "downstream pod created" (the ADDED event's
  arrival). Pod creationTimestamps have 1 s resolution and cannot measure this.

Usage: ``python -m benchmarks.bench_pipeline [--items 2000] [--chain 40]``. Uses
$KUBECONFIG, or else a local cluster of its own with the node agent
(``benchmarks.clusters``: another session's fault test cannot restart it midway).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client

from benchmarks.bench_launch import bare_loop, fresh_namespace
from benchmarks.bench_launch import pod as bench_pod
from benchmarks.clusters import BENCH_WITH_AGENT, own_cluster
from controller.base.states import DagRunState, RunType
from controller.base.tries import TryKey
from controller.executor.kubeclient import make_api_client
from controller.executor.kubernetes import (
    ExecutorSettings,
    KubernetesExecutor,
    settings_from_config,
)
from controller.executor.podspec import PodIdentity, RenderedCommand, build_pod
from controller.executor.watchstream import PodWatch, list_pods
from controller.logstore import LogStore
from controller.runtime.engine import Engine
from controller.settings.loading import load_config
from controller.spec.model import Dag, Task, dag_to_dict
from controller.store import Store, upgrade

SCRIPTED = {"annotations": {"agent.kubedag.io/mode": "scripted"}}
BARE_LABEL = "kubedag.io/bench"
WARM_UP_PODS = 500


@contextmanager
def cluster_with_agent() -> Iterator[str]:
    """$KUBECONFIG's cluster, else a local cluster of the benchmark's own, node agent on."""
    named = os.environ.get("KUBECONFIG")
    if named:
        yield named
        return
    with own_cluster(*BENCH_WITH_AGENT, with_node_agent=True) as cluster:
        yield str(cluster.kubeconfig)


class Creations:
    """The first ADDED event per pod name, with its arrival time and its task, from a watch
    of its own (read under a lock: the watch thread writes while the bench reads)."""

    def __init__(
        self, api: kubernetes.client.ApiClient, namespace: str, *, label_selector: str
    ) -> None:
        _, version = list_pods(api, namespace=namespace, label_selector=label_selector)
        self._lock = threading.Lock()
        self._added: dict[str, tuple[float, str]] = {}
        self._watch = PodWatch(
            api, namespace=namespace, label_selector=label_selector, resource_version=version
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self._watch:
            if event.type == "ADDED" and event.pod is not None:
                annotations = event.pod["metadata"].get("annotations") or {}
                with self._lock:
                    self._added.setdefault(
                        event.pod["metadata"]["name"],
                        (time.time(), annotations.get("kubedag.io/task", "")),
                    )

    def times(self, task: str | None = None) -> list[float]:
        """Arrival times of the pods seen so far, of one task or of all."""
        with self._lock:
            return [at for at, of in self._added.values() if task is None or of == task]

    def first_by_task(self) -> dict[str, float]:
        """Each task's first pod's arrival time."""
        with self._lock:
            ordered = sorted(self._added.values())
        return {of: at for at, of in reversed(ordered)}

    def stop(self) -> None:
        self._watch.stop()


def creation_rate(times: Iterable[float]) -> float:
    """Pods/s between the first and the last creation: start-up and tail excluded alike."""
    ordered = sorted(times)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done after {timeout}s")
        time.sleep(0.2)


def namespace_gone(core: kubernetes.client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name, _request_timeout=10)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


PodBody = Callable[[int, str], dict[str, Any]]


def minimal_pod(index: int, namespace: str) -> dict[str, Any]:
    return bench_pod(f"bare-{index}", annotations=SCRIPTED["annotations"])


def kubedag_pod(settings: ExecutorSettings) -> PodBody:
    """The fan-out's pods as the executor builds them, bar the finalizer."""

    def build(index: int, namespace: str) -> dict[str, Any]:
        identity = PodIdentity(
            dag="bare",
            key=TryKey(1, "fan", index, 1),
            revision="0" * 40,
            controller=settings.instance,
            dag_file="bare.yaml",
        )
        fan = task("fan")
        rendered = RenderedCommand(command=fan.command)
        config = replace(settings.pod, namespace=namespace)
        body = build_pod(task=fan, identity=identity, rendered=rendered, config=config)
        body["metadata"]["finalizers"] = []
        body["metadata"]["labels"][BARE_LABEL] = "kubedag-pods"
        return body

    return build


def bare(kubeconfig: str, admin: kubernetes.client.ApiClient, pods: int, *, body: PodBody) -> float:
    """The bare loop's rate, measured as the pipeline's is; its pods gone afterwards."""
    core = kubernetes.client.CoreV1Api(admin)
    with fresh_namespace(core) as namespace:
        creations = Creations(admin, namespace, label_selector=BARE_LABEL)
        try:
            bare_loop(kubeconfig, namespace, pods, body=body, raw=True)
            wait_until(
                lambda: len(creations.times()) >= pods, timeout=60, what="the bare loop's pods"
            )
        finally:
            creations.stop()
    wait_until(lambda: namespace_gone(core, namespace), timeout=300, what="the bare loop's cleanup")
    return creation_rate(creations.times())


def task(name: str, **fields: Any) -> Task:
    return Task(
        name=name, image="busybox:1.36", command=("true",), pod_overrides=SCRIPTED, **fields
    )


def run_dag(store: Store, engine: Engine, dag: Dag, *, timeout: float) -> int:
    spec = dag_to_dict(dag)
    with store.transaction() as uow:
        uow.upsert_dag(
            name=dag.name, path=f"{dag.name}.yaml", revision="0" * 40, spec_hash=dag.name, spec=spec
        )
        run, _ = uow.create_run(
            dag_name=dag.name,
            logical_date=datetime.now(UTC),
            run_type=RunType.MANUAL,
            revision="0" * 40,
            spec=spec,
        )
    engine.wake([run.id])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.transaction() as uow:
            state = uow.get_run(run.id)
        if state is not None and state.state.finished:
            if state.state is not DagRunState.SUCCEEDED:
                raise RuntimeError(f"run {run.id} of {dag.name} {state.state.value}")
            return run.id
        time.sleep(0.2)
    raise RuntimeError(f"run {run.id} of {dag.name} did not finish in {timeout}s")


def succeeded_at(store: Store, run_id: int) -> dict[str, float]:
    with store.transaction() as uow:
        events = uow.list_events(run_id=run_id, kind="task-succeeded", limit=100_000)
    return {str(e.task_name): e.at.timestamp() for e in events}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000, help="fan-out width")
    parser.add_argument("--chain", type=int, default=40, help="tasks in the hop chain")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with (
        cluster_with_agent() as kubeconfig,
        tempfile.TemporaryDirectory() as scratch,
        make_api_client(kubeconfig=kubeconfig) as admin,
    ):
        core = kubernetes.client.CoreV1Api(admin)
        same_pods = kubedag_pod(executor_settings(namespace="default"))
        # A server just started answers its first few hundred creates slower; none of
        # the measurements below should pay for that.
        bare(kubeconfig, admin, min(args.items, WARM_UP_PODS), body=same_pods)
        same = [bare(kubeconfig, admin, args.items, body=same_pods)]
        print(f"bare raw loop, 8 threads, kubedag's pods: {same[0]:.1f} pods/s", flush=True)
        minimal = [bare(kubeconfig, admin, args.items, body=minimal_pod)]
        print(f"bare raw loop, 8 threads, minimal pods: {minimal[0]:.1f} pods/s", flush=True)
        with fresh_namespace(core) as ns:
            rate, hops = pipeline(kubeconfig, ns, Path(scratch), args)
        wait_until(lambda: namespace_gone(core, ns), timeout=300, what="the pipeline's cleanup")
        # Once more after the pipeline, so a server that slows (or speeds up) over the
        # run favours neither side: the baseline is the mean of before and after.
        same.append(bare(kubeconfig, admin, args.items, body=same_pods))
        print(f"bare raw loop, 8 threads, kubedag's pods: {same[1]:.1f} pods/s", flush=True)
        minimal.append(bare(kubeconfig, admin, args.items, body=minimal_pod))
        print(f"bare raw loop, 8 threads, minimal pods: {minimal[1]:.1f} pods/s", flush=True)
    ratio = rate / statistics.mean(same)
    p50 = statistics.median(hops) * 1000
    p95 = statistics.quantiles(hops, n=20)[-1] * 1000
    print(f"pipeline launch: {rate:.1f} pods/s")
    print(f"ratio pipeline/bare, same pods: {ratio:.2f} (target >= 0.80)")
    print(f"ratio pipeline/bare, minimal pods: {rate / statistics.mean(minimal):.2f}")
    print(f"load average at start {load:.1f}, at end {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"hop upstream succeeded -> downstream pod created: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    return 0 if ratio >= 0.8 and p50 < 200 else 1


def executor_settings(*, namespace: str) -> ExecutorSettings:
    """kubedag's defaults, pods created in ``namespace``."""
    config = load_config(environ={}, overrides={"executor.namespaces": [namespace]})
    return settings_from_config(config, repo_url="file:///bench", dags_path="")


def pipeline(
    kubeconfig: str, namespace: str, scratch: Path, args: argparse.Namespace
) -> tuple[float, list[float]]:
    url = f"sqlite:///{scratch / 'kubedag.db'}"
    upgrade(url)
    store = Store.connect(url)
    config = load_config(environ={}, overrides={"executor.namespaces": [namespace]})
    settings = executor_settings(namespace=namespace)
    api = make_api_client(kubeconfig=kubeconfig, pool_maxsize=max(32, settings.workers))
    executor = KubernetesExecutor(
        api, store, settings=settings, log_store=LogStore(str(scratch / "logs"))
    )
    engine = Engine(store, executor, parallelism=config.executor.parallelism)
    creations = Creations(api, namespace, label_selector="kubedag.io/task")
    engine.start()
    try:
        fan = Dag(
            name="fan",
            max_active_tasks=args.items,
            tasks=(
                task("root"),
                task("fan", depends_on=("root",), with_items=tuple(range(args.items))),
            ),
        )
        started = time.time()
        run_dag(store, engine, fan, timeout=600)
        print(f"fan-out of {args.items}: run finished in {time.time() - started:.1f}s", flush=True)
        # The bench's own watch may still be behind the controller's: wait for every pod.
        wait_until(
            lambda: len(creations.times("fan")) >= args.items,
            timeout=60,
            what="the bench's watch to see every fan-out pod",
        )
        rate = creation_rate(creations.times("fan"))
        links = tuple(
            task(f"t{i}", depends_on=(f"t{i - 1}",) if i else ()) for i in range(args.chain)
        )
        chain_run = run_dag(store, engine, Dag(name="chain", tasks=links), timeout=300)
        done = succeeded_at(store, chain_run)
        wait_until(
            lambda: creations.first_by_task().keys() >= set(done),
            timeout=60,
            what="the bench's watch to see every chain pod",
        )
        created = creations.first_by_task()
        hops = [created[f"t{i}"] - done[f"t{i - 1}"] for i in range(1, args.chain)]
        # Cleanup is part of the pipeline: wait for it, so every pod's logs are stored
        # and no pod is left holding its finalizer in a namespace being deleted.
        began = time.monotonic()
        wait_until(executor.results_stored, timeout=600, what="cleanup of the finished pods")
        events = sum(watcher.stats.events for watcher in executor.watchers)
        batches = sum(watcher.stats.batches for watcher in executor.watchers)
        print(
            f"watch: {events} events in {batches} commits; cleanup: "
            f"{executor.cleaner.cleaned} pods, drained {time.monotonic() - began:.1f}s "
            "after the last run finished",
            flush=True,
        )
    finally:
        creations.stop()
        engine.stop()
        api.close()  # type: ignore[no-untyped-call]
        store.close()
    return rate, hops


if __name__ == "__main__":
    sys.exit(main())
