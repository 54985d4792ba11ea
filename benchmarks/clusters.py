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
from controller.devcluster.config import default_data_dir


@contextmanager
def own_cluster(name: str, port_base: int, *, watch_cache: bool = True) -> Iterator[LocalCluster]:
    cluster = LocalCluster(ClusterConfig(data_dir=default_data_dir(name), port_base=port_base))
    sharing.acquire(cluster, with_node_agent=False, watch_cache=watch_cache)
    try:
        yield cluster
    finally:
        sharing.release(cluster)
