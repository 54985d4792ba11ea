"""`kubedag dev-cluster up|down|status|env` and `kubedag node-agent`.

The local control plane is the same one the test suite uses; these commands are its
one entry point for people. `up` builds the Kubernetes binaries the first time (minutes,
with progress) and is idempotent; `down` stops only the processes `up` recorded.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from controller.devcluster import ClusterConfig, ClusterError, LocalCluster
from controller.devcluster.cluster import PACKAGE_ROOT
from controller.devcluster.layout import (
    DEV_PORT_BASE,
    REAL_PORT_BASE,
    default_data_dir,
    kubernetes_bin_dir,
)


def register(subparsers: Any) -> None:
    dev = subparsers.add_parser(
        "dev-cluster",
        help="run a local Kubernetes control plane with a node agent",
        description="A local control plane (etcd, kube-apiserver, kube-controller-manager, "
        "kube-scheduler) plus a node agent that runs pods as local processes. To use any other "
        "cluster (kind, k3d, minikube, a real one), set KUBECONFIG instead.",
    )
    dev.add_argument(
        "--node",
        choices=("agent", "real"),
        default="agent",
        help="agent: the node agent runs pods as local processes (fast, the default); "
        "real: a kubelet with containerd runs them in containers (root only; its own "
        "cluster, default data dir clusters/real and port base 26443)",
    )
    dev.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where certificates, etcd data, logs and the kubeconfig live "
        f"(default: {default_data_dir('dev')}, or {default_data_dir('real')} with --node=real)",
    )
    dev.add_argument(
        "--port-base",
        type=int,
        default=None,
        help="the apiserver port; etcd, controller-manager, scheduler and the "
        f"node's kubelet port use the next five (default: {DEV_PORT_BASE}, "
        f"or {REAL_PORT_BASE} with --node=real)",
    )
    actions = dev.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up", help="build (first time) and start the cluster; reuses a running one"
    )
    up.add_argument(
        "--no-node-agent",
        action="store_true",
        help="start the control plane without the node agent",
    )
    up.add_argument(
        "--no-watch-cache",
        action="store_true",
        help="run the apiserver without its watch cache (compaction then answers "
        "old watches with 410 Gone at once)",
    )
    up.set_defaults(handler=_up)
    actions.add_parser(
        "build", help="only build the Kubernetes binaries into the cache (first time: minutes)"
    ).set_defaults(handler=_build)
    actions.add_parser(
        "images",
        help="build the images a real node runs (the controller from the Dockerfile, local "
        "stand-ins for the public images worker pods use); cached, first time: minutes",
    ).set_defaults(handler=_images)
    actions.add_parser("down", help="stop the processes `up` started").set_defaults(handler=_down)
    actions.add_parser("status", help="show which components run").set_defaults(handler=_status)
    actions.add_parser(
        "env",
        help="print shell lines that point kubectl and kubedag at the "
        'cluster: eval "$(kubedag dev-cluster env)"',
    ).set_defaults(handler=_env)

    agent = subparsers.add_parser(
        "node-agent",
        help="run the node agent (the kubelet stand-in) against a cluster",
        description="Registers nodes and runs the pods bound to them as local processes, or "
        "by script for pods annotated agent.kubedag.io/mode=scripted.",
    )
    agent.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="default: $KUBECONFIG, else in-cluster configuration",
    )
    agent.add_argument(
        "--node",
        action="append",
        default=[],
        dest="nodes",
        help="a node to register (repeatable; default: kubedag-node-0)",
    )
    agent.add_argument(
        "--name",
        default="kubedag-node-agent",
        help="the agent's name; Nodes labelled agent.kubedag.io/agent=NAME are adopted",
    )
    agent.add_argument("--port", type=int, default=10250, help="the kubelet (log) port")
    agent.add_argument(
        "--address",
        default="127.0.0.1",
        help="the nodes' InternalIP, where the apiserver fetches logs",
    )
    agent.add_argument("--tls-cert", type=Path, required=True, help="serving certificate")
    agent.add_argument("--tls-key", type=Path, required=True, help="its private key")
    agent.add_argument(
        "--data-dir", type=Path, required=True, help="where pod directories and container logs live"
    )
    agent.add_argument(
        "--mode",
        choices=("process", "scripted"),
        default="process",
        help="for pods without an agent.kubedag.io/mode annotation",
    )
    agent.add_argument(
        "--scenario",
        type=Path,
        default=None,
        help="YAML rules that script matching pods (see docs/local-cluster.md)",
    )
    agent.add_argument("--writers", type=int, default=8, help="status writer threads")
    agent.set_defaults(handler=_node_agent)


def _cluster(args: argparse.Namespace) -> LocalCluster:
    real = args.node == "real"
    if args.data_dir is None:
        args.data_dir = default_data_dir("real" if real else "dev")
    port_base = args.port_base or (REAL_PORT_BASE if real else DEV_PORT_BASE)
    return LocalCluster(ClusterConfig(data_dir=args.data_dir, port_base=port_base, real_node=real))


def _up(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    try:
        cluster.up(watch_cache=not args.no_watch_cache, with_node_agent=not args.no_node_agent)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"cluster is up: {cluster.config.server_url}")
    node = " --node=real" if args.node == "real" else ""
    print(f'use it with:   eval "$(kubedag dev-cluster{node} --data-dir {args.data_dir} env)"')
    return 0


def _build(args: argparse.Namespace) -> int:
    try:
        _cluster(args).ensure_binaries()
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Kubernetes binaries are in {kubernetes_bin_dir()}")
    return 0


def _images(args: argparse.Namespace) -> int:
    from controller.devcluster.images import ImageBuilder

    try:
        archives = ImageBuilder(source_root=PACKAGE_ROOT).ensure()
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for archive in archives:
        print(archive)
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = _cluster(args).down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    status = cluster.status()
    for name, pid in status.items():
        print(f"{name:<24} {'running, pid ' + str(pid) if pid else 'stopped'}")
    ready = status["kube-apiserver"] is not None and cluster.apiserver_ready()
    print(f"{'apiserver /readyz':<24} {'ok' if ready else 'not ready'}")
    return 0 if all(status.values()) and ready else 3


def _env(args: argparse.Namespace) -> int:
    kubeconfig = _cluster(args).kubeconfig
    if not kubeconfig.exists():
        print(
            f"error: no cluster in {args.data_dir}; run `kubedag dev-cluster up` first",
            file=sys.stderr,
        )
        return 1
    print(f"export KUBECONFIG={kubeconfig}")
    print(f'export PATH="{kubernetes_bin_dir()}:$PATH"')
    return 0


def _node_agent(args: argparse.Namespace) -> int:
    from controller.nodeagent.agent import AgentConfig, NodeAgent
    from controller.nodeagent.behaviour import BehaviourError, load_scenario
    from controller.nodeagent.nodes import NodeShape

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        scenario = load_scenario(args.scenario) if args.scenario else []
    except BehaviourError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kubeconfig = args.kubeconfig or (
        Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None
    )
    agent = NodeAgent(
        AgentConfig(
            kubeconfig=kubeconfig,
            nodes=args.nodes or ["kubedag-node-0"],
            data_dir=args.data_dir,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            name=args.name,
            shape=NodeShape(host_ip=args.address, kubelet_port=args.port),
            default_mode=args.mode,
            scenario=scenario,
            writers=args.writers,
        )
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    agent.start()
    done.wait()
    agent.stop()
    return 0
