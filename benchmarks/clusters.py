"""A local cluster of a benchmark's own, beside this checkout's test cluster.

The test cluster's apiserver is restarted by the checkout's fault tests (with its
watch cache turned off and etcd compacted), which breaks a measurement's watch midway;
a benchmark that needs its watch unbroken, or restarts the apiserver itself, runs a
cluster of its own under ``~/.cache/kubedag/clusters/NAME``, started if not running and
stopped when its last user leaves. `checkout_test_cluster` is this checkout's test
cluster, for a benchmark that means to share it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.devcluster import ClusterConfig, LocalCluster, sharing
from controller.devcluster.layout import default_data_dir
from controller.devcluster.testclusters import checkout_cluster_config

CHECKOUT = Path(__file__).resolve().parents[1]

# Port bases below Linux's ephemeral range (32768-60999): a base inside it had the
# controller-manager's port taken by an outgoing connection of the apiserver to etcd.
BENCH = ("bench", 28643)
"""The cluster benchmarks without a node agent share (its pods are never scheduled)."""
BENCH_WITH_AGENT = ("bench-agent", 28843)
"""The cluster of benchmarks whose pods run (scripted by the node agent)."""


@contextmanager
def own_cluster(
    name: str, port_base: int, *, watch_cache: bool = True, with_node_agent: bool = False
) -> Iterator[LocalCluster]:
    config = ClusterConfig(data_dir=default_data_dir(name), port_base=port_base)
    with shared(config, watch_cache=watch_cache, with_node_agent=with_node_agent) as cluster:
        yield cluster


@contextmanager
def checkout_test_cluster(*, with_node_agent: bool = True) -> Iterator[LocalCluster]:
    """This checkout's test cluster, as its test sessions find it."""
    config = checkout_cluster_config(CHECKOUT)
    with shared(config, watch_cache=False, with_node_agent=with_node_agent) as cluster:
        yield cluster


@contextmanager
def shared(
    config: ClusterConfig, *, watch_cache: bool, with_node_agent: bool
) -> Iterator[LocalCluster]:
    cluster = LocalCluster(config)
    sharing.acquire(cluster, with_node_agent=with_node_agent, watch_cache=watch_cache)
    try:
        yield cluster
    finally:
        sharing.release(cluster)
