"""Share one local cluster between concurrent users (parallel test sessions).

Two pytest sessions on one machine reuse the same test cluster; the one that finishes
first must not stop it under the other. Each user holds a lease file named by its PID;
the last user to leave stops the cluster, and only if a lease holder started it (a
cluster brought up by hand with `kubedag dev-cluster up` is never stopped by tests).
All of it happens under an exclusive flock, so start and stop never interleave.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.devcluster.cluster import LocalCluster


@contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """An exclusive flock on `data_dir/.lock` for the block: one user of it at a time."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _live_leases(lease_dir: Path) -> list[Path]:
    live = []
    for lease in lease_dir.glob("*"):
        if Path(f"/proc/{lease.name}").exists():
            live.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return live


def acquire(
    cluster: LocalCluster, *, with_node_agent: bool = True, watch_cache: bool = True
) -> None:
    """Bring the cluster up (or reuse it) and record this process as a user."""
    data_dir = cluster.config.data_dir
    lease_dir = data_dir / "leases"
    with locked(data_dir):
        lease_dir.mkdir(exist_ok=True)
        holders = _live_leases(lease_dir)
        marker = data_dir / "started-by-lease"
        if not cluster.is_up(with_node_agent=with_node_agent):
            if not holders:
                marker.touch()
            cluster.up(with_node_agent=with_node_agent, watch_cache=watch_cache)
        (lease_dir / str(os.getpid())).touch()


def release(cluster: LocalCluster) -> bool:
    """Drop this process's lease; stop the cluster if it was the last one. True if stopped."""
    data_dir = cluster.config.data_dir
    lease_dir = data_dir / "leases"
    with locked(data_dir):
        (lease_dir / str(os.getpid())).unlink(missing_ok=True)
        marker = data_dir / "started-by-lease"
        if _live_leases(lease_dir) or not marker.exists():
            return False
        marker.unlink()
        cluster.down()
        return True
