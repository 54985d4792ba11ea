"""A local cluster of a benchmark's own, beside the shared test cluster.

The shared test cluster's apiserver is restarted by other sessions' fault tests (with
its watch cache turned off and etcd compacted), which breaks a measurement's watch
midway; a benchmark that needs its watch unbroken, or restarts the apiserver itself,
runs a cluster of its own under ``~/.cache/kubedag/clusters/NAME``, started if not
running and stopped when its last user leaves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from controller.devcluster import ClusterConfig, LocalCluster, sharing
from controller.devcluster.layout import default_data_dir

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
    cluster = LocalCluster(ClusterConfig(data_dir=default_data_dir(name), port_base=port_base))
    sharing.acquire(cluster, with_node_agent=with_node_agent, watch_cache=watch_cache)
    try:
        yield cluster
    finally:
        sharing.release(cluster)
