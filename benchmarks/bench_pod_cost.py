"""What each part of kubedag's worker pod costs the API server, A/B in one run.

Eight threads post raw JSON pods (no client-side work) as fast as the server takes them,
in chunks that alternate between variants of the pod: minimal one-container pods, and
kubedag's pod as built by default and with one part added back or taken away: the
projected API token (what the ServiceAccount admission adds unless
``automountServiceAccountToken: false``), the checkout init container and workspace
volume (``checkout: false``), the security context; and two pods kubedag does not build,
to see what a change would gain: the checkout script held by the init image instead of
posted in every pod, and no identity annotations beside the labels. Chunks are small and their order
rotates, so a server that slows down (etcd growing, other work on the machine) weighs
on every variant alike; a variant's rate is its pods over the time its chunks took, and
its ratio is that rate over the minimal pods' rate of the same round.

Pods name a scheduler that does not exist, so no scheduler or node touches them: what
is measured is admission, validation, storage and the watch caches, the part of a
pod's cost that its shape decides. Each round runs in a fresh namespace, deleted (and
gone) before the next.

Usage: ``python -m benchmarks.bench_pod_cost [--chunk 100] [--rotations 10]
[--rounds 3]``. Runs a local cluster of its own (``benchmarks.clusters``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes.client

from benchmarks.bench_launch import fresh_namespace
from benchmarks.bench_launch import pod as minimal_body
from benchmarks.bench_pipeline import namespace_gone, wait_until
from benchmarks.clusters import BENCH, own_cluster
from controller.base.tries import TryKey
from controller.executor.kubeclient import make_api_client, post_json
from controller.executor.podspec import PodConfig, PodIdentity, RenderedCommand, build_pod
from controller.spec.model import Task

NO_SCHEDULER = "kubedag-bench-nobody"
THREADS = 8
Body = Callable[[int, str], dict[str, Any]]


def unscheduled(body: dict[str, Any]) -> dict[str, Any]:
    body["spec"]["schedulerName"] = NO_SCHEDULER
    body["metadata"]["finalizers"] = []
    return body


def minimal(index: int, namespace: str) -> dict[str, Any]:
    return unscheduled(minimal_body(f"bare-{index}"))


def kubedag(
    *,
    checkout: bool = True,
    security: bool = True,
    token: bool = False,
    script_in_image: bool = False,
    annotations: bool = True,
) -> Body:
    """kubedag's pod for one fan-out item, bar the finalizer (so its namespace can go)."""

    def build(index: int, namespace: str) -> dict[str, Any]:
        task = Task(
            name="fan", image="busybox:1.36", command=("python3", "job.py"), checkout=checkout
        )
        identity = PodIdentity(
            dag="bench",
            key=TryKey(1, "fan", index, 1),
            revision="0" * 40,
            controller="kubedag",
            dag_file="dags/bench.yaml",
        )
        config = PodConfig(
            repo_url="https://git.example.com/dags.git",
            namespace=namespace,
            security_defaults=security,
        )
        body = build_pod(
            task=task,
            identity=identity,
            rendered=RenderedCommand(command=task.command),
            config=config,
        )
        if token:
            # The pod as it was before kubedag turned the token off by default.
            del body["spec"]["automountServiceAccountToken"]
        if script_in_image:
            # What the init container would weigh if its image held the checkout script.
            body["spec"]["initContainers"][0]["command"] = ["/usr/local/bin/kubedag-checkout"]
        if not annotations:
            # Labels only, as if no value ever needed cutting to fit one.
            body["metadata"]["annotations"] = {}
        return unscheduled(body)

    return build


ALL: dict[str, Body] = {
    "minimal": minimal,
    "kubedag default": kubedag(),
    "+ API token (old default)": kubedag(token=True),
    "- checkout (checkout: false)": kubedag(checkout=False),
    "- security context": kubedag(security=False),
    "- checkout - security": kubedag(checkout=False, security=False),
    "checkout script in the image": kubedag(script_in_image=True),
    "- identity annotations": kubedag(annotations=False),
}


class Poster:
    """Eight threads posting pods over one client, chunk after chunk."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self._api = api
        self._namespace = namespace
        self._pool = ThreadPoolExecutor(max_workers=THREADS)
        self._next = 0

    def post(self, body: Body, count: int) -> float:
        """Seconds to create `count` pods of `body`."""
        first = self._next
        self._next += count
        started = time.perf_counter()
        list(
            self._pool.map(
                lambda index: self._create(body(index, self._namespace)),
                range(first, first + count),
            )
        )
        return time.perf_counter() - started

    def _create(self, body: dict[str, Any]) -> None:
        response = post_json(self._api, f"/api/v1/namespaces/{self._namespace}/pods", body)
        response.drain_conn()
        response.release_conn()

    def close(self) -> None:
        self._pool.shutdown()


def one_round(kubeconfig: str, args: argparse.Namespace) -> dict[str, float]:
    """Pods/s per variant (and "minimal") over one round in a fresh namespace."""
    spent = dict.fromkeys(ALL, 0.0)
    with make_api_client(kubeconfig=kubeconfig, pool_maxsize=THREADS) as api:
        core = kubernetes.client.CoreV1Api(api)
        with fresh_namespace(core) as namespace:
            poster = Poster(api, namespace)
            try:
                names = list(ALL)
                for rotation in range(args.rotations):
                    shift = rotation % len(names)
                    for name in names[shift:] + names[:shift]:
                        spent[name] += poster.post(ALL[name], args.chunk)
            finally:
                poster.close()
        wait_until(lambda: namespace_gone(core, namespace), timeout=600, what="cleanup")
    return {name: args.chunk * args.rotations / seconds for name, seconds in spent.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=100, help="pods per chunk")
    parser.add_argument("--rotations", type=int, default=10, help="chunks per variant a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each a fresh namespace")
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {name: [] for name in ALL}
    load = os.getloadavg()[0]
    with own_cluster(*BENCH) as cluster:
        kubeconfig = str(cluster.kubeconfig)
        for round_number in range(args.rounds):
            result = one_round(kubeconfig, args)
            for name, rate in result.items():
                rates[name].append(rate)
            shown = ", ".join(f"{name} {rate:.0f}" for name, rate in result.items())
            print(f"round {round_number + 1} (pods/s): {shown}", flush=True)
    per_variant = args.chunk * args.rotations
    print(
        f"\n{per_variant} pods per variant a round, {args.rounds} rounds, "
        f"load average at start {load:.1f} (2 cores); median pods/s and ratio to minimal"
    )
    for name in ALL:
        ratios = [rate / base for rate, base in zip(rates[name], rates["minimal"], strict=True)]
        print(
            f"  {name:<30} {statistics.median(rates[name]):7.1f}  {statistics.median(ratios):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
