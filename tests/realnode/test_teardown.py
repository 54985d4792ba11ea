"""`down` leaves the host as `up` found it: every journalled change undone, nothing of
the node left running or mounted. Runs last in the suite: it takes the node down (with
kubedag and its pods in it, so there is something to clean) and brings it back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.devcluster import LocalCluster
from controller.devcluster.hostchanges import has_address, has_link, mounts_under, read_sysctl
from tests.realnode.conftest import Deployment

# Setup may bring the node up and deploy kubedag; a cold machine builds images first.
pytestmark = [pytest.mark.realnode, pytest.mark.timeout(1200)]


def other_sessions(cluster: LocalCluster) -> list[str]:
    leases = cluster.config.data_dir / "leases"
    return [
        p.name
        for p in leases.glob("*")
        if p.name != str(os.getpid()) and Path(f"/proc/{p.name}").exists()
    ]


def processes_using(folder: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in argv:
            found.append(f"{entry.name}: {argv[:200]}")
    return found


def test_down_puts_the_host_back_as_it_was(
    real_cluster: LocalCluster, deployment: Deployment
) -> None:
    if other_sessions(real_cluster):
        pytest.skip("another test session uses the real node")
    node = real_cluster.real_node
    assert node is not None
    journal = node.journal.entries()
    assert {e["kind"] for e in journal} >= {"sysctl", "dir", "cgroup"}
    assert mounts_under(node.dir), "a node running pods has volumes mounted"
    node.down()
    try:
        for entry in journal:
            if entry["kind"] == "address":
                assert not has_address(entry["device"], entry["cidr"])
            elif entry["kind"] == "link":
                assert not has_link(entry["name"])
            elif entry["kind"] == "sysctl":
                assert read_sysctl(entry["name"]) == entry["value"], entry
            elif entry["kind"] in ("dir", "cgroup"):
                assert not Path(entry["path"]).exists(), entry
        assert mounts_under(real_cluster.config.data_dir) == []
        assert processes_using(node.dir) == []
        assert not node.journal.path.exists()
    finally:
        real_cluster.up(with_node_agent=False)
