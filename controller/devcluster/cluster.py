"""A local Kubernetes control plane: etcd, kube-apiserver, controller-manager, scheduler.

The real binaries run on loopback so that everything kubedag relies on (watches,
resourceVersions, 410 Gone, RBAC, admission, pod log proxying) behaves as it does in a
real cluster. `up` is idempotent: components already running (by recorded PID) are
kept, missing ones are started, and it returns only once each answers its health check,
so callers never race a half-started cluster. Fault injection (stopping the apiserver,
compacting etcd) lives here too because it needs the same PIDs and ports.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import kubernetes.client
import kubernetes.config
import yaml

from controller.devcluster import commands, processes
from controller.devcluster.kubeconfig import write_kubeconfig
from controller.devcluster.layout import ClusterConfig
from controller.devcluster.pki import REAL_NODE, Pki, ensure_pki
from controller.devcluster.readiness import ClusterError, admits_pods, wait_until
from controller.devcluster.realnode import RealNode, write_kubelet_kubeconfig

COMPONENTS: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
)
NODE_AGENT = "node-agent"
# The node every local cluster gets; more can be added with the agent's label.
DEFAULT_NODE = "kubedag-node-0"
AGENT_USER = "kubedag-node-agent"
CM_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
# The apiserver's graceful shutdown waits on open watches for many seconds; nothing is
# lost by cutting it short. etcd gets longer, to finish writing its data.
STOP_TIMEOUT = {"etcd": 10.0}
DEFAULT_STOP_TIMEOUT = 3.0
ADMIN = "kubedag-admin"
BUILD_SCRIPT = Path(__file__).with_name("build-kubernetes.sh")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class LocalCluster:
    """One local control plane, identified by its data directory."""

    def __init__(self, config: ClusterConfig, *, log: Callable[[str], None] = print) -> None:
        self.config = config
        self._log = log
        self._pki: Pki | None = None

    @property
    def real_node(self) -> RealNode | None:
        """The kubelet + containerd node, for a cluster configured with one."""
        if not self.config.real_node:
            return None
        return RealNode(self.config, self.pki, source_root=PACKAGE_ROOT, log=self._log)

    @property
    def kubeconfig(self) -> Path:
        return self.config.kubeconfig

    @property
    def pki(self) -> Pki:
        if self._pki is None:
            self._pki = ensure_pki(self.config.pki_dir)
        return self._pki

    # -- lifecycle -------------------------------------------------------------------

    def ensure_binaries(self) -> None:
        """Build the Kubernetes binaries into the cache unless they are already there."""
        missing = [
            name
            for name in (*COMPONENTS, "kubectl", "etcdctl")
            if not self.config.binary(name).exists()
        ]
        if not missing:
            return
        if sys.platform != "linux":
            raise ClusterError(
                "the local control plane runs on Linux only; point kubedag at another "
                "cluster (kind, k3d, minikube, a real one) with KUBECONFIG instead"
            )
        self._log(f"missing {', '.join(missing)}: building (takes minutes the first time)")
        result = subprocess.run(["bash", str(BUILD_SCRIPT)], check=False, timeout=3600)
        if result.returncode != 0:
            raise ClusterError(
                f"building the Kubernetes binaries failed (exit {result.returncode}); "
                "see the messages above"
            )

    @classmethod
    def at(cls, kubeconfig: Path, *, log: Callable[[str], None] = print) -> LocalCluster | None:
        """The local cluster that wrote this kubeconfig, or None for any other cluster."""
        data_dir = kubeconfig.resolve().parent
        if kubeconfig.name != "kubeconfig" or not (data_dir / "pki" / "tokens.csv").exists():
            return None
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        port = int(server.rsplit(":", 1)[1])
        real = (data_dir / "node" / "containerd").exists()
        return cls(ClusterConfig(data_dir=data_dir, port_base=port, real_node=real), log=log)

    def up(
        self, *, watch_cache: bool = True, with_node_agent: bool = True, timeout: float = 120.0
    ) -> None:
        self.ensure_binaries()
        cfg = self.config
        node = self.real_node
        if node is not None:
            # Before anything starts: not root, or no containerd, should cost nothing.
            node.check_host()
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        tokens = self.pki.tokens()
        write_kubeconfig(
            cfg.kubeconfig,
            server=cfg.server_url,
            ca=self.pki.ca_cert,
            user=ADMIN,
            token=tokens[ADMIN],
        )
        for user, token in tokens.items():
            write_kubeconfig(
                cfg.kubeconfig_for(user),
                server=cfg.server_url,
                ca=self.pki.ca_cert,
                user=user,
                token=token,
            )
        self._ensure(
            "etcd",
            commands.etcd_argv(self.config),
            lambda: self._http_ok(f"{cfg.etcd_url}/health"),
            timeout=timeout,
        )
        self._ensure(
            "kube-apiserver",
            commands.apiserver_argv(self.config, self.pki, watch_cache=watch_cache),
            self.apiserver_ready,
            timeout=timeout,
        )
        self._ensure(
            "kube-controller-manager",
            commands.controller_manager_argv(
                self.config, self.pki, kubeconfig=self._component_kubeconfig(CM_USER)
            ),
            self._healthz(cfg.controller_manager_port),
            timeout=timeout,
        )
        self._ensure(
            "kube-scheduler",
            commands.scheduler_argv(
                self.config, kubeconfig=self._component_kubeconfig(SCHEDULER_USER)
            ),
            self._healthz(cfg.scheduler_port),
            timeout=timeout,
        )
        # Pods cannot be created until the controller-manager made the default
        # ServiceAccount's token; callers expect `up` to mean "ready for pods".
        wait_until(
            self._default_namespace_admits_pods,
            timeout=timeout,
            what="the default namespace to admit pods (its ServiceAccount's token)",
        )
        if node is not None:
            kubelet_kubeconfig = cfg.kubeconfig_for(f"system:node:{REAL_NODE}")
            write_kubelet_kubeconfig(
                kubelet_kubeconfig,
                server=cfg.server_url,
                ca=self.pki.ca_cert,
                token=tokens[f"system:node:{REAL_NODE}"],
            )
            with self.api_client() as admin:
                node.up(
                    admin=admin,
                    kubelet_kubeconfig=kubelet_kubeconfig,
                    ensure=self._ensure,
                    timeout=timeout,
                )
        elif with_node_agent:
            self._ensure(
                NODE_AGENT,
                commands.node_agent_argv(
                    self.config,
                    self.pki,
                    kubeconfig=self._component_kubeconfig(AGENT_USER),
                    node=DEFAULT_NODE,
                ),
                lambda: self._https_ok(cfg.kubelet_port, "/healthz", token=""),
                timeout=timeout,
            )

    def down(self) -> list[str]:
        """Stop the components this cluster started, newest first. Returns their names."""
        stopped = []
        node = self.real_node
        if node is not None:
            stopped += node.down()
        for name in (NODE_AGENT, *reversed(COMPONENTS)):
            timeout = STOP_TIMEOUT.get(name, DEFAULT_STOP_TIMEOUT)
            if processes.stop(run_dir=self.config.run_dir, name=name, timeout=timeout):
                stopped.append(name)
        return stopped

    def status(self) -> dict[str, int | None]:
        node = self.real_node
        names = (*COMPONENTS, *(node.names() if node is not None else (NODE_AGENT,)))
        return {name: processes.running_pid(self.config.run_dir, name) for name in names}

    def is_up(self, *, with_node_agent: bool = True) -> bool:
        status = self.status()
        if not with_node_agent:
            status.pop(NODE_AGENT, None)
        return all(pid is not None for pid in status.values()) and self.apiserver_ready()

    def stop_node_agent(self) -> bool:
        return processes.stop(run_dir=self.config.run_dir, name=NODE_AGENT)

    # -- clients ---------------------------------------------------------------------

    def token(self, user: str) -> str:
        """The static token of a pre-made user (see pki.TEST_USERS for RBAC tests)."""
        tokens = self.pki.tokens()
        if user not in tokens:
            raise KeyError(f"no static token for user {user!r}; known: {sorted(tokens)}")
        return tokens[user]

    def api_client(self, *, user: str = ADMIN) -> kubernetes.client.ApiClient:
        path = self.kubeconfig if user == ADMIN else self.config.kubeconfig_for(user)
        client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(path)
        )
        return client

    # -- fault injection -------------------------------------------------------------

    def stop_apiserver(self) -> None:
        processes.stop(
            run_dir=self.config.run_dir, name="kube-apiserver", timeout=DEFAULT_STOP_TIMEOUT
        )

    def start_apiserver(
        self, *, watch_cache: bool = True, restart_controllers: bool = True, timeout: float = 60.0
    ) -> None:
        """Start the apiserver; `watch_cache=False` makes compacted watches answer 410.

        After an outage, client-go in the controller-manager and scheduler backs off for up
        to 30 s, which would stall every test after this one (no ServiceAccount tokens, no
        scheduling). `restart_controllers` restarts those two so the cluster is whole again
        when this returns; the code under test still saw a real outage.
        """
        self._ensure(
            "kube-apiserver",
            commands.apiserver_argv(self.config, self.pki, watch_cache=watch_cache),
            self.apiserver_ready,
            timeout=timeout,
        )
        if not restart_controllers:
            return
        for name, argv, port in (
            (
                "kube-controller-manager",
                commands.controller_manager_argv(
                    self.config, self.pki, kubeconfig=self._component_kubeconfig(CM_USER)
                ),
                self.config.controller_manager_port,
            ),
            (
                "kube-scheduler",
                commands.scheduler_argv(
                    self.config, kubeconfig=self._component_kubeconfig(SCHEDULER_USER)
                ),
                self.config.scheduler_port,
            ),
        ):
            if processes.running_pid(self.config.run_dir, name) is None:
                continue
            processes.stop(run_dir=self.config.run_dir, name=name, timeout=DEFAULT_STOP_TIMEOUT)
            self._ensure(name, argv, self._healthz(port), timeout=timeout)

    def restart_apiserver(
        self, *, watch_cache: bool = True, restart_controllers: bool = True, timeout: float = 60.0
    ) -> None:
        self.stop_apiserver()
        self.start_apiserver(
            watch_cache=watch_cache, restart_controllers=restart_controllers, timeout=timeout
        )

    def watch_cache_enabled(self) -> bool | None:
        """Whether the running apiserver has its watch cache (None: not running)."""
        pid = processes.running_pid(self.config.run_dir, "kube-apiserver")
        if pid is None:
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return b"--watch-cache=false" not in argv

    def use_watch_cache(self, enabled: bool) -> None:
        """Restart the apiserver only if its watch cache setting differs."""
        if self.watch_cache_enabled() != enabled:
            self.restart_apiserver(watch_cache=enabled)

    def compact_etcd(self) -> int:
        """Compact etcd to its current revision; returns that revision."""
        header = self._etcd_call("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
        revision = int(header["header"]["revision"])  # type: ignore[index]
        self._etcd_call("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    # -- health ----------------------------------------------------------------------

    def apiserver_ready(self) -> bool:
        return self._https_ok(self.config.apiserver_port, "/readyz", token=self.token(ADMIN))

    def _healthz(self, port: int) -> Callable[[], bool]:
        return lambda: self._https_ok(port, "/healthz", token=None)

    def _default_namespace_admits_pods(self) -> bool:
        with self.api_client() as api:
            try:
                return admits_pods(kubernetes.client.CoreV1Api(api), "default")
            except kubernetes.client.ApiException:
                return False  # the control plane is still starting; the wait is bounded

    def _ensure(
        self, name: str, argv: list[str], ready: Callable[[], bool], *, timeout: float
    ) -> None:
        cfg = self.config
        pid = processes.running_pid(cfg.run_dir, name)
        if pid is None:
            self._log(f"starting {name}")
            # The node agent is this package run as a program: make sure it imports this
            # very copy of kubedag, whatever the caller's working directory.
            env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
            pid = processes.start(
                run_dir=cfg.run_dir, log_dir=cfg.log_dir, name=name, argv=argv, env=env
            )

        def check() -> bool:
            code = processes.exited_early(pid)
            if code is not None:
                raise ClusterError(
                    f"{name} exited with code {code}; last lines of "
                    f"{cfg.log_dir / (name + '.log')}:\n{self._log_tail(name)}"
                )
            return ready()

        wait_until(
            check,
            timeout=timeout,
            what=f"{name} to become healthy",
            detail=lambda: self._log_tail(name),
        )

    def _log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.config.log_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def _https_ok(self, port: int, path: str, *, token: str | None = None) -> bool:
        # controller-manager and scheduler serve self-signed certificates of their own;
        # the apiserver and the node agent serve ours (token None: skip verification).
        ctx = ssl._create_unverified_context() if token is None else self._ssl_context()  # noqa: S323
        request = urllib.request.Request(f"https://127.0.0.1:{port}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=3, context=ctx) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _http_ok(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _etcd_call(self, path: str, body: dict[str, object]) -> dict[str, object]:
        request = urllib.request.Request(  # noqa: S310 (a fixed http:// loopback URL)
            f"{self.config.etcd_url}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            result: dict[str, object] = json.load(response)
        return result

    def _component_kubeconfig(self, user: str) -> Path:
        path = self.config.kubeconfig_for(user)
        if not path.exists():
            write_kubeconfig(
                path,
                server=self.config.server_url,
                ca=self.pki.ca_cert,
                user=user,
                token=self.token(user),
            )
        return path
