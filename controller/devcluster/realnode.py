"""A real node for the local control plane: the kubelet, containerd and a CNI bridge.

The node agent runs a pod's commands as host processes and ignores images, which makes
it fast but blind to everything a container adds (images, users, read-only root
filesystems, the termination message file, the kubelet's log and exec endpoints). This
node is the real thing, for the tests and demos that are about containers:

- containerd runs with its root, state, socket and CNI configuration under the
  cluster's data dir; `restrict_oom_score_adj` is on because an unprivileged sandbox
  cannot lower its OOM score here, and the sandbox image is the locally built pause;
- the kubelet (built with the control plane) runs without QoS cgroups or node
  allocatable enforcement, which need a systemd host; it admits only the apiserver's
  client certificate and asks the apiserver (webhook) what a caller may do;
- the node's address is a /32 from a documentation range on `lo`, since a kubelet
  refuses a loopback node IP; pods reach the host on it through the bridge.

Everything it changes outside the data dir is journalled first (see hostchanges), and
`down` removes the containers, stops both daemons and undoes the journal.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes.client

from controller.devcluster import images, packages, processes
from controller.devcluster.hostchanges import HostChanges, unmount_all
from controller.devcluster.kubeconfig import write_kubeconfig
from controller.devcluster.layout import ClusterConfig
from controller.devcluster.pki import (
    APISERVER_KUBELET_CLIENT,
    REAL_NODE,
    REAL_NODE_IP,
    Pki,
)
from controller.devcluster.readiness import ClusterError, wait_until

CONTAINERD = "containerd"
KUBELET = "kubelet"
RUNTIME_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iproute2")
BRIDGE = "kubedag0"
POD_SUBNET = "10.213.0.0/24"
CNI_BIN_DIR = "/usr/lib/cni"
# What the kubelet, containerd and the CNI plugins touch outside the data dir.
KUBELET_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
)
HOST_DIRS = (
    "/var/log/pods",
    "/var/log/containers",
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/run/containerd",
    "/run/netns",
    "/etc/cni/net.d",
)
CTR_TIMEOUT = 120.0
HOST_LOG_STORE = Path("/var/lib/kubedag-real-node/logs")
"""The controller's log store in manifests/overlays/local-real-node (a hostPath)."""
CONTROLLER_UID = 65532


class RealNode:
    """The kubelet and containerd of one local cluster (its data dir's `node/`)."""

    def __init__(
        self,
        config: ClusterConfig,
        pki: Pki,
        *,
        source_root: Path,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.pki = pki
        self.source_root = source_root
        self._log = log
        self.dir = config.data_dir / "node"
        self.journal = HostChanges(config.data_dir / "host-changes.json")

    # -- paths -----------------------------------------------------------------------

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def _containerd_config(self) -> Path:
        return self.dir / "containerd" / "config.toml"

    @property
    def _cni_conf_dir(self) -> Path:
        return self.dir / "cni" / "net.d"

    @property
    def _ipam_dir(self) -> Path:
        return self.dir / "cni" / "ipam"

    @property
    def kubelet_dir(self) -> Path:
        return self.dir / "kubelet"

    # -- lifecycle -------------------------------------------------------------------

    def check_host(self) -> None:
        if os.geteuid() != 0:
            raise ClusterError(
                "the real node (kubelet + containerd) must run as root: it mounts volumes, "
                "creates network namespaces and a bridge; run as root, or use the node agent "
                "(without --node=real)"
            )
        packages.ensure(RUNTIME_PACKAGES, why="the real node", log=self._log)

    def up(
        self,
        *,
        admin: kubernetes.client.ApiClient,
        kubelet_kubeconfig: Path,
        ensure: Callable[..., None],
        timeout: float,
    ) -> None:
        """Start containerd and the kubelet (`ensure` is the cluster's start-and-wait)."""
        self.check_host()
        archives = self._build_images()
        self._record_host_changes()
        self.journal.add_address("lo", f"{REAL_NODE_IP}/32")
        self.journal.expect_dir(HOST_LOG_STORE.parent)
        HOST_LOG_STORE.mkdir(parents=True, exist_ok=True)
        os.chown(HOST_LOG_STORE, CONTROLLER_UID, CONTROLLER_UID)
        self._write_containerd_config()
        self._write_cni_config()
        ensure(
            CONTAINERD,
            [
                shutil.which("containerd") or "/usr/bin/containerd",
                "--config",
                str(self._containerd_config),
            ],
            self._containerd_ready,
            timeout=timeout,
        )
        self._import(archives)
        _grant_apiserver_kubelet_access(admin)
        ensure(
            KUBELET, self._kubelet_argv(kubelet_kubeconfig), self._kubelet_ready, timeout=timeout
        )
        wait_until(
            lambda: _node_schedulable(admin),
            timeout=timeout,
            what=f"node {REAL_NODE} to be Ready without the not-ready taint",
        )

    def load_images(self) -> None:
        """Build what changed since (the controller image follows the source) and import it."""
        self._import(self._build_images())

    def _build_images(self) -> list[Path]:
        return images.ImageBuilder(source_root=self.source_root, log=self._log).ensure()

    def down(self) -> list[str]:
        """Stop the kubelet, every container, containerd; undo the host changes."""
        stopped = []
        run_dir = self.config.run_dir
        if processes.stop(run_dir=run_dir, name=KUBELET, timeout=10.0):
            stopped.append(KUBELET)
        if processes.running_pid(run_dir, CONTAINERD) is not None:
            self._remove_all_containers()
        if processes.stop(run_dir=run_dir, name=CONTAINERD, timeout=10.0):
            stopped.append(CONTAINERD)
        # Shims outlive containerd by design; with their containers gone they exit, but
        # one stuck on a dead container would keep its mounts busy.
        self._stop_shims()
        unmount_all(self.dir)
        for path in self._ipam_dir.glob("*/*"):
            path.unlink(missing_ok=True)
        self.journal.restore()
        return stopped

    def names(self) -> tuple[str, str]:
        return (CONTAINERD, KUBELET)

    # -- containerd ------------------------------------------------------------------

    def _record_host_changes(self) -> None:
        for name in KUBELET_SYSCTLS:
            self.journal.expect_sysctl(name)
        for path in HOST_DIRS:
            self.journal.expect_dir(Path(path))
        # containerd puts every container's cgroup under `k8s.io` in each hierarchy.
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            if hierarchy.is_dir() and not hierarchy.is_symlink():
                self.journal.expect_cgroup(hierarchy / "k8s.io")
        self.journal.expect_link(BRIDGE)

    def _write_containerd_config(self) -> None:
        base = self.dir / "containerd"
        base.mkdir(parents=True, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        self._containerd_config.write_text(
            f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{self.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

[{cri}]
  sandbox_image = "{images.PAUSE_IMAGE}"
  # An unprivileged sandbox cannot lower its OOM score below its parent's here.
  restrict_oom_score_adj = true
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{self._cni_conf_dir}"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
"""
        )

    def _write_cni_config(self) -> None:
        self._cni_conf_dir.mkdir(parents=True, exist_ok=True)
        self._ipam_dir.mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "0.4.0",
            "name": "kubedag",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # No masquerading: pods talk to this host only, and no iptables rules
                    # are left behind.
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self._ipam_dir),
                    },
                }
            ],
        }
        (self._cni_conf_dir / "10-kubedag.conflist").write_text(json.dumps(conflist, indent=2))

    def _ctr(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=CTR_TIMEOUT,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _containerd_ready(self) -> bool:
        if not self.containerd_socket.exists():
            return False
        return (
            subprocess.run(
                ["ctr", "--address", str(self.containerd_socket), "version"],
                check=False,
                capture_output=True,
                timeout=10,
            ).returncode
            == 0
        )

    def _import(self, archives: list[Path]) -> None:
        """Import each archive once per containerd root (a marker file remembers which)."""
        marker = self.dir / "containerd" / "root" / "kubedag-imported"
        done = set(marker.read_text().split()) if marker.exists() else set()
        for archive in archives:
            if archive.name in done:
                continue
            self._log(f"importing {archive.name} into containerd")
            self._ctr("images", "import", "--no-unpack=false", str(archive))
            source = self._image_name_in(archive)
            for extra in images.extra_names(archive):
                self._ctr("images", "rm", extra, check=False)
                self._ctr("images", "tag", source, extra)
            done.add(archive.name)
            marker.write_text("\n".join(sorted(done)) + "\n")

    def _image_name_in(self, archive: Path) -> str:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise ClusterError(f"{archive} has no manifest.json")
            manifest = json.load(member)
        tag: str = manifest[0]["RepoTags"][0]
        return tag

    def _remove_all_containers(self) -> None:
        for task in self._ctr("tasks", "list", "-q", check=False).split():
            self._ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        for task in self._ctr("tasks", "list", "-q", check=False).split():
            self._ctr("tasks", "delete", "-f", task, check=False)
        for container in self._ctr("containers", "list", "-q", check=False).split():
            self._ctr("containers", "delete", container, check=False)

    def _stop_shims(self) -> None:
        state = str(self.dir / "containerd")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                argv
                and argv[0].endswith(b"containerd-shim-runc-v2")
                and any(state.encode() in arg for arg in argv)
            ):
                os.kill(int(entry.name), 9)

    # -- kubelet ---------------------------------------------------------------------

    def _kubelet_argv(self, kubeconfig: Path) -> list[str]:
        cfg = self.config
        root = self.kubelet_dir
        return [
            str(cfg.binary("kubelet")),
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={REAL_NODE}",
            f"--node-ip={REAL_NODE_IP}",
            f"--address={REAL_NODE_IP}",
            f"--port={cfg.kubelet_port}",
            "--read-only-port=0",
            "--healthz-bind-address=127.0.0.1",
            f"--healthz-port={cfg.kubelet_healthz_port}",
            f"--root-dir={root}",
            f"--cert-dir={root / 'pki'}",
            f"--volume-plugin-dir={root / 'volume-plugins'}",
            f"--tls-cert-file={self.pki.real_kubelet_cert}",
            f"--tls-private-key-file={self.pki.real_kubelet_key}",
            # Only the apiserver's client certificate gets in; what it may do is asked of
            # the apiserver itself.
            "--anonymous-auth=false",
            f"--client-ca-file={self.pki.ca_cert}",
            "--authentication-token-webhook=true",
            "--authorization-mode=Webhook",
            "--container-runtime=remote",
            f"--container-runtime-endpoint=unix://{self.containerd_socket}",
            f"--pod-infra-container-image={images.PAUSE_IMAGE}",
            # Without systemd: plain cgroupfs, no QoS cgroups, nothing to enforce them on.
            "--cgroup-driver=cgroupfs",
            "--cgroups-per-qos=false",
            "--enforce-node-allocatable=",
            "--fail-swap-on=false",
            "--make-iptables-util-chains=false",
            # The images cannot be pulled again: never collect them.
            "--image-gc-high-threshold=100",
            "--image-gc-low-threshold=99",
            "--v=1",
        ]

    def _kubelet_ready(self) -> bool:
        url = f"http://127.0.0.1:{self.config.kubelet_healthz_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False


def write_kubelet_kubeconfig(path: Path, *, server: str, ca: Path, token: str) -> None:
    write_kubeconfig(path, server=server, ca=ca, user=f"system:node:{REAL_NODE}", token=token)


def _grant_apiserver_kubelet_access(admin: kubernetes.client.ApiClient) -> None:
    """Let the apiserver's client certificate read logs and exec through the kubelet."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(admin)
    body: dict[str, Any] = {
        "metadata": {"name": "kubedag:apiserver-kubelet-client"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:kubelet-api-admin",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": APISERVER_KUBELET_CLIENT,
            }
        ],
    }
    try:
        rbac.create_cluster_role_binding(body, _request_timeout=10)  # type: ignore[arg-type]
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise


def _node_schedulable(admin: kubernetes.client.ApiClient) -> bool:
    core = kubernetes.client.CoreV1Api(admin)
    try:
        node = core.read_node(REAL_NODE, _request_timeout=5)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return False
        raise
    ready = any(
        c.type == "Ready" and c.status == "True"
        for c in ((node.status and node.status.conditions) or [])
    )
    tainted = any(
        t.key == "node.kubernetes.io/not-ready" for t in ((node.spec and node.spec.taints) or [])
    )
    return ready and not tainted
