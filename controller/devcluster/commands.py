"""The command lines of the control plane's processes, and why each flag is there.

Kept apart from the lifecycle code so the flags (which encode what was learned making
these components run on loopback without kubelets) read as one list per component.
"""

from __future__ import annotations

import sys
from pathlib import Path

from controller.devcluster.layout import ClusterConfig
from controller.devcluster.pki import Pki


def etcd_argv(cfg: ClusterConfig) -> list[str]:
    peer = f"http://127.0.0.1:{cfg.etcd_peer_port}"
    return [
        str(cfg.binary("etcd")),
        "--name=kubedag",
        f"--data-dir={cfg.etcd_dir}",
        f"--listen-client-urls={cfg.etcd_url}",
        f"--advertise-client-urls={cfg.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=kubedag={peer}",
        "--log-level=warn",
    ]


def apiserver_argv(cfg: ClusterConfig, pki: Pki, *, watch_cache: bool) -> list[str]:
    return [
        str(cfg.binary("kube-apiserver")),
        f"--etcd-servers={cfg.etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={cfg.apiserver_port}",
        f"--cert-dir={cfg.pki_dir}",
        f"--tls-cert-file={pki.apiserver_cert}",
        f"--tls-private-key-file={pki.apiserver_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--token-auth-file={pki.token_file}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=Node,RBAC",
        # Loopback addresses are rejected as endpoints of the kubernetes Service.
        "--endpoint-reconciler-type=none",
        "--kubelet-preferred-address-types=InternalIP",
        # A real kubelet admits only clients it can authenticate (no anonymous access).
        f"--kubelet-client-certificate={pki.kubelet_client_cert}",
        f"--kubelet-client-key={pki.kubelet_client_key}",
        "--allow-privileged=true",
        # Plain max-in-flight limits: load tests create pods from many threads.
        "--enable-priority-and-fairness=false",
        "--max-requests-inflight=1000",
        "--max-mutating-requests-inflight=500",
        f"--watch-cache={'true' if watch_cache else 'false'}",
        "--profiling=false",
    ]


def controller_manager_argv(cfg: ClusterConfig, pki: Pki, *, kubeconfig: Path) -> list[str]:
    # The node agent keeps its nodes Ready itself; a real kubelet only reports its
    # conditions, and the node-lifecycle controller removes the not-ready taint.
    controllers = "*,-nodeipam" if cfg.real_node else "*,-nodeipam,-nodelifecycle"
    return [
        str(cfg.binary("kube-controller-manager")),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cfg.controller_manager_port}",
        "--port=0",
        f"--cert-dir={cfg.pki_dir / 'controller-manager'}",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        "--use-service-account-credentials=true",
        f"--controllers={controllers}",
        "--leader-elect=false",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
    ]


def node_agent_argv(cfg: ClusterConfig, pki: Pki, *, kubeconfig: Path, node: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "controller",
        "node-agent",
        f"--kubeconfig={kubeconfig}",
        f"--node={node}",
        f"--port={cfg.kubelet_port}",
        f"--tls-cert={pki.kubelet_cert}",
        f"--tls-key={pki.kubelet_key}",
        f"--data-dir={cfg.data_dir / 'node-agent'}",
    ]


def scheduler_argv(cfg: ClusterConfig, *, kubeconfig: Path) -> list[str]:
    return [
        str(cfg.binary("kube-scheduler")),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cfg.scheduler_port}",
        "--port=0",
        f"--cert-dir={cfg.pki_dir / 'scheduler'}",
        "--leader-elect=false",
        "--kube-api-qps=500",
        "--kube-api-burst=1000",
    ]
