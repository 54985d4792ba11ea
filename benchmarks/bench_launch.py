"""Pod launch throughput: kubedag's Launcher with its defaults against a bare client loop.

The bare loop (8 threads sharing one client, each creating pods one after another) is the
ceiling an executor can approach on a given API server; the number that matters is the
Launcher's rate as a fraction of it, measured in the same run on the same server (target
0.8 or better), because absolute rates say more about the machine than about kubedag.
Rounds alternate bare and Launcher so a server slowing down as etcd fills up does not
favour either. Pods need no node to be created, so no node agent is involved.

Usage: ``python -m benchmarks.bench_launch [--pods N] [--rounds R]``. Uses $KUBECONFIG,
or else starts (and afterwards stops, unless others still use it) the local test cluster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config

from controller.devcluster.readiness import admits_pods, wait_until
from controller.executor.kubeclient import make_api_client, post_json
from controller.executor.launcher import Launcher, LaunchRequest
from controller.executor.observer import LaunchStatus

BARE_THREADS = 8


def pod(name: str, *, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"kubedag.io/bench": "launch"},
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "task", "image": "busybox:1.36", "command": ["true"]}],
        },
    }


@contextmanager
def cluster_kubeconfig() -> Iterator[str]:
    named = os.environ.get("KUBECONFIG")
    if named:
        yield named
        return
    from benchmarks.clusters import checkout_test_cluster

    with checkout_test_cluster(with_node_agent=False) as local:
        yield str(local.kubeconfig)


@contextmanager
def fresh_namespace(core: kubernetes.client.CoreV1Api) -> Iterator[str]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}}, _request_timeout=10)
    wait_until(
        lambda: admits_pods(core, name),
        timeout=60,
        what=f"namespace {name} to admit pods (its default ServiceAccount's token)",
    )
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background", _request_timeout=30)


def bare_loop(
    kubeconfig: str,
    namespace: str,
    pods: int,
    *,
    body: Callable[[int, str], Mapping[str, Any]] | None = None,
    raw: bool = False,
) -> float:
    """Pods/s of 8 threads creating pods one after another, as a user's loop would.

    ``body(index, namespace)`` is the pod to create (by default a minimal one), so the
    loop can create exactly the pods it is compared with. By default each thread calls
    the generated ``create_namespaced_pod``; with ``raw`` it posts the pod's JSON with
    no client-side model work at all, the most a client can get from the server.
    """
    api = (
        make_api_client(kubeconfig=kubeconfig)
        if raw
        else kubernetes.config.new_client_from_config(config_file=kubeconfig)
    )
    core = kubernetes.client.CoreV1Api(api)
    names = iter(range(pods))
    lock = threading.Lock()

    def create(made: Mapping[str, Any]) -> None:
        if raw:
            response = post_json(api, f"/api/v1/namespaces/{namespace}/pods", made)
            response.drain_conn()
            response.release_conn()
        else:
            core.create_namespaced_pod(namespace, made, _request_timeout=30)

    def worker() -> None:
        while True:
            with lock:
                index = next(names, None)
            if index is None:
                return
            create(pod(f"bare-{index}") if body is None else body(index, namespace))

    threads = [threading.Thread(target=worker) for _ in range(BARE_THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    api.close()
    return pods / elapsed


def launcher_defaults(kubeconfig: str, namespace: str, pods: int) -> float:
    """Pods/s of the Launcher with every default, all pods handed over at once."""
    with make_api_client(kubeconfig=kubeconfig) as api, Launcher(api) as launcher:
        requests = [LaunchRequest(namespace, pod(f"kd-{i}"), key=i) for i in range(pods)]
        started = time.perf_counter()
        outcomes = launcher.launch(requests)
        elapsed = time.perf_counter() - started
    failed = [o for o in outcomes if o.status is not LaunchStatus.CREATED]
    if failed:
        raise RuntimeError(f"{len(failed)} launches failed, first: {failed[0].message}")
    return pods / elapsed


def measure(name: str, run: Callable[[str, str, int], float], kubeconfig: str, pods: int) -> float:
    with make_api_client(kubeconfig=kubeconfig) as admin:
        core = kubernetes.client.CoreV1Api(admin)
        with fresh_namespace(core) as namespace:
            rate = run(kubeconfig, namespace, pods)
    print(f"  {name:<22} {rate:7.1f} pods/s", flush=True)
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000, help="pods per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="bare/Launcher pairs")
    args = parser.parse_args(argv)
    with cluster_kubeconfig() as kubeconfig:
        print(f"cluster: {Path(kubeconfig)}; {args.pods} pods per measurement")
        bare: list[float] = []
        ours: list[float] = []
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number}:")
            bare.append(measure("bare loop, 8 threads", bare_loop, kubeconfig, args.pods))
            ours.append(measure("Launcher, defaults", launcher_defaults, kubeconfig, args.pods))
    ratio = statistics.median(ours) / statistics.median(bare)
    print(
        f"median: bare {statistics.median(bare):.1f} pods/s, "
        f"Launcher {statistics.median(ours):.1f} pods/s, ratio {ratio:.2f} (target >= 0.80)"
    )
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
