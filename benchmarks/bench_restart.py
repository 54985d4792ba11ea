"""Controller SIGKILL beside thousands of live pods, restart, and time to the first new pod.

A controller process (``benchmarks.engine_process``, PostgreSQL) launches a fan-out of
``--live`` pods and is SIGKILLed once the watch position it stored covers them all.
While it is down a new run is queued (as `kubedag trigger` would). The figure is the
time from starting the controller process again to the ADDED event of the new run's
pod, seen by a watch of the benchmark's own; the time the process spent inside
``Engine.start`` is printed beside it. The baseline is the same restart with no live
pods, measured in the same run: a restart whose work grows with the live pods shows
up as a ratio above 1.

With ``--expire`` each restart also goes through a 410: the apiserver runs without its
watch cache (restarted that way, and back afterwards) and etcd is compacted while the
controller is down, so its watch cannot resume from the stored position and lists the
namespace again.

Live pods name a scheduler that does not exist, so they stay Pending (their tries stay
LAUNCHED): nothing but the restart itself differs between the baseline and the
measurement, and a node agent has nothing to do. Afterwards their finalizers are
removed and the namespace deleted.

Usage: ``python -m benchmarks.bench_restart [--live 5000] [--rounds 3] [--expire]
[--shared]``. Runs a local cluster of its own (``~/.cache/kubedag/clusters/bench-restart``,
ports from 28443), started if not running and stopped afterwards; ``--shared`` uses this
checkout's test cluster instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client
import yaml

from benchmarks.bench_launch import fresh_namespace
from benchmarks.bench_pipeline import namespace_gone, wait_until
from benchmarks.bench_trigger import FirstPods, start_controller, started_line
from benchmarks.clusters import checkout_test_cluster, own_cluster
from benchmarks.databases import database
from controller.devcluster import LocalCluster
from controller.executor.kubeclient import make_api_client
from controller.executor.watchstream import list_pods
from controller.runtime.manual import trigger_run
from controller.spec.model import Dag, Task, dag_to_dict
from controller.store import Store

NO_SCHEDULER = "kubedag-bench-nobody"
OWN_CLUSTER = "bench-restart"
OWN_PORT_BASE = 28443  # below the ephemeral port range, as in benchmarks.clusters
"""A cluster of the benchmark's own: nobody restarts its apiserver mid-measurement, and
turning its watch cache off (--expire) restarts nobody else's watches."""
LABEL = "kubedag.io/bench-restart"
SCRIPTED = {"agent.kubedag.io/mode": "scripted"}
STRIP_THREADS = 8


@dataclass(frozen=True)
class Restart:
    to_first_pod: float
    """Seconds from starting the process to the new run's pod."""
    setup: float
    """Seconds before Engine.start was called: interpreter, imports, connections."""
    engine_start: float
    """Seconds the process spent in Engine.start."""


def task(name: str, **fields: object) -> Task:
    return Task(
        name=name,
        image="busybox:1.36",
        command=("true",),
        checkout=False,
        pod_overrides={"annotations": SCRIPTED, "labels": {LABEL: "yes"}},
        **fields,
    )


def store_dag(store: Store, dag: Dag) -> None:
    with store.transaction() as uow:
        uow.upsert_dag(
            name=dag.name,
            path=f"{dag.name}.yaml",
            revision="0" * 40,
            spec_hash=dag.name,
            spec=dag_to_dict(dag),
        )


def cursor_of(store: Store, namespace: str) -> int:
    with store.transaction() as uow:
        cursor = uow.get_cursor(namespace)
    return -1 if cursor is None else int(cursor)


def strip_finalizers(api: kubernetes.client.ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(api)
    pods, _ = list_pods(api, namespace=namespace, label_selector=LABEL)
    patch = {"metadata": {"finalizers": None}}

    def strip(name: str) -> None:
        core.patch_namespaced_pod(name, namespace, patch, _request_timeout=30)

    with ThreadPoolExecutor(max_workers=STRIP_THREADS) as pool:
        list(pool.map(strip, [str(pod["metadata"]["name"]) for pod in pods]))


def one_restart(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, *, live: int, expire: bool
) -> tuple[Restart, str]:
    """The restart's figures, and the namespace it used (being deleted)."""
    kubeconfig = str(cluster.kubeconfig)
    core = kubernetes.client.CoreV1Api(api)
    with (
        tempfile.TemporaryDirectory() as scratch,
        database("postgresql", Path(scratch)) as url,
        fresh_namespace(core) as namespace,
    ):
        template = Path(scratch) / "pod-template.yaml"
        template.write_text(yaml.safe_dump({"spec": {"schedulerName": NO_SCHEDULER}}))
        store = Store.connect(url)
        pods = FirstPods(api, namespace, key="kubedag.io/run-id", selector=LABEL)
        first = None
        try:
            store_dag(store, Dag(name="new", tasks=(task("first"),)))
            # Every live pod at once, whatever executor.parallelism's default.
            parallelism = live + 100
            first = start_controller(
                url, namespace, kubeconfig, pod_template=template, parallelism=parallelism
            )
            started_line(first)
            if live:
                fan = Dag(
                    name="live",
                    max_active_tasks=live,
                    tasks=(task("fan", with_items=tuple(range(live))),),
                )
                store_dag(store, fan)
                run = trigger_run(store, dag_name=fan.name, params={})
                pods.wait_count(str(run.id), live, timeout=600)
                seen = pods.resource_version
                wait_until(
                    lambda: cursor_of(store, namespace) >= seen,
                    timeout=120,
                    what="the controller to store a watch position past its pods",
                )
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            if expire:
                # History after the stored position, then compacted away: a 410.
                core.create_namespaced_config_map(
                    namespace, {"metadata": {"name": "after-the-cursor"}}, _request_timeout=10
                )
                cluster.compact_etcd()
            new = trigger_run(store, dag_name="new", params={})
            began = time.time()
            second = start_controller(
                url, namespace, kubeconfig, pod_template=template, parallelism=parallelism
            )
            try:
                created = pods.wait(str(new.id), timeout=300)
                called, engine_start = started_line(second)
            finally:
                assert second.stdin is not None
                second.stdin.close()
                second.wait(60)
            figures = Restart(
                to_first_pod=created - began, setup=called - began, engine_start=engine_start
            )
            return figures, namespace
        finally:
            if first is not None and first.poll() is None:
                first.kill()
                first.wait(30)
            pods.stop()
            store.close()
            strip_finalizers(api, namespace)


@contextmanager
def without_watch_cache(cluster: LocalCluster, *, wanted: bool) -> Iterator[None]:
    """With `wanted`, the apiserver without its watch cache, so a compaction means 410.

    The cluster is shared: it is restarted only when wanted and needed, and put back.
    """
    before = cluster.watch_cache_enabled()
    if wanted:
        cluster.use_watch_cache(False)
    try:
        yield
    finally:
        if wanted and before:
            cluster.use_watch_cache(True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=5000, help="live pods at the restart")
    parser.add_argument("--rounds", type=int, default=3, help="restarts of each kind")
    parser.add_argument("--expire", action="store_true", help="restart through a 410")
    parser.add_argument(
        "--shared",
        action="store_true",
        help="use this checkout's test cluster instead of a cluster of the benchmark's own",
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    results: dict[int, list[Restart]] = {0: [], args.live: []}
    with (
        (
            checkout_test_cluster()
            if args.shared
            else own_cluster(OWN_CLUSTER, OWN_PORT_BASE, watch_cache=not args.expire)
        ) as cluster,
        without_watch_cache(cluster, wanted=args.expire),
        make_api_client(kubeconfig=str(cluster.kubeconfig)) as api,
    ):
        core = kubernetes.client.CoreV1Api(api)
        for round_number in range(1, args.rounds + 1):
            for live in (0, args.live):
                restart, namespace = one_restart(cluster, api, live=live, expire=args.expire)
                results[live].append(restart)
                print(
                    f"round {round_number}, {live} live pods: first new pod "
                    f"{restart.to_first_pod:.2f}s after the process started (setup "
                    f"{restart.setup:.2f}s, Engine.start {restart.engine_start:.2f}s)",
                    flush=True,
                )
                # The next restart must not pay for deleting this one's pods.
                wait_until(
                    lambda ns=namespace: namespace_gone(core, ns), timeout=600, what="cleanup"
                )
    base = statistics.median(r.to_first_pod for r in results[0])
    measured = statistics.median(r.to_first_pod for r in results[args.live])
    path = "through a 410 relist" if args.expire else "resuming the watch"
    target = 10.0 if args.expire else 5.0
    print(f"\nrestart {path}; load average at start {load:.1f} (2 cores); medians")
    print(f"  no live pods:     {base:.2f}s")
    print(f"  {args.live} live pods: {measured:.2f}s (ratio {measured / base:.2f})")
    print(f"target with 5,000 live pods: < {target:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
