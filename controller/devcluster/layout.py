"""Where a local control plane lives: its data directory, ports and binaries.

A cluster is identified by its data directory; everything else (ports, certificates,
PIDs, logs) hangs off it, so two clusters with two data directories and two port bases
can run side by side (a developer's `dev-cluster up` and a test session at once; each
source checkout's tests have a cluster of their own, see `testclusters`). All
ports derive from one base so a second cluster needs exactly one number to differ.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

DEV_PORT_BASE = 16443
REAL_PORT_BASE = 26443
"""The cluster with a real kubelet and containerd (`dev-cluster --node=real`). Like every
cluster's ports, below Linux's ephemeral range (32768-60999): at 36443 its etcd once found
its port taken by an outgoing connection of another process and did not start."""


def cache_dir() -> Path:
    explicit = os.environ.get("KUBEDAG_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kubedag"


def kubernetes_bin_dir() -> Path:
    return cache_dir() / "kubernetes" / "bin"


def default_data_dir(name: str) -> Path:
    return cache_dir() / "clusters" / name


@dataclass(frozen=True)
class ClusterConfig:
    """The layout of one local cluster. Ports are `port_base + offset`."""

    data_dir: Path
    port_base: int = DEV_PORT_BASE
    bin_dir: Path | None = None
    real_node: bool = False
    """A real kubelet + containerd node instead of the node agent."""

    @property
    def apiserver_port(self) -> int:
        return self.port_base

    @property
    def etcd_client_port(self) -> int:
        return self.port_base + 1

    @property
    def etcd_peer_port(self) -> int:
        return self.port_base + 2

    @property
    def controller_manager_port(self) -> int:
        return self.port_base + 3

    @property
    def scheduler_port(self) -> int:
        return self.port_base + 4

    @property
    def kubelet_port(self) -> int:
        """The node agent's log port (the kubelet port the apiserver proxies logs to)."""
        return self.port_base + 5

    @property
    def kubelet_healthz_port(self) -> int:
        """The real kubelet's healthz port, on loopback."""
        return self.port_base + 6

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_client_port}"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def etcd_dir(self) -> Path:
        return self.data_dir / "etcd"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def kubeconfig_for(self, user: str) -> Path:
        return self.data_dir / "kubeconfigs" / f"{user}.kubeconfig"

    def binary(self, name: str) -> Path:
        """A Kubernetes binary from the build cache; etcd comes from the system."""
        if name in ("etcd", "etcdctl"):
            found = shutil.which(name)
            return Path(found) if found else Path("/usr/bin") / name
        return (self.bin_dir or kubernetes_bin_dir()) / name
