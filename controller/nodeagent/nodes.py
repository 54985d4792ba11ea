"""Nodes of the node agent: registered, kept Ready, adopted on request, lost on request.

With the controller-manager's node lifecycle controller off, nobody else keeps a Node
healthy: a Node created through the API starts with the `not-ready` taint and no
heartbeat. The keeper removes that taint, posts the Ready condition and renews the node
Lease on a bounded period. A Node created by anyone with the agent's label is adopted,
so tests can add a node of their own (e.g. to lose it) without restarting the agent;
the `agent.kubedag.io/lost` annotation on a Node asks the agent to lose it.
"""

from __future__ import annotations

import logging
import platform
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from controller.nodeagent.behaviour import NODE_AGENT_LABEL, NODE_LOST
from controller.nodeagent.podstate import JSON, now
from controller.nodeagent.rawapi import ApiError, RawApi

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 10.0
NOT_READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


@dataclass(frozen=True)
class NodeShape:
    """What every node of this agent advertises."""

    host_ip: str = "127.0.0.1"
    kubelet_port: int = 10250
    cpu: str = "64"
    memory: str = "256Gi"
    pods: str = "10000"


def node_manifest(name: str, *, agent: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                NODE_AGENT_LABEL: agent,
            },
        },
        "spec": {},
    }


def _conditions(ready: str, reason: str, message: str) -> list[JSON]:
    stamp = now()
    healthy = [
        ("MemoryPressure", "KubeletHasSufficientMemory"),
        ("DiskPressure", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "KubeletHasSufficientPID"),
    ]
    conditions = [
        {
            "type": kind,
            "status": "False",
            "reason": why,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
            "message": "node agent",
        }
        for kind, why in healthy
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": ready,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
    )
    return conditions


def node_status(shape: NodeShape, name: str) -> JSON:
    resources = {
        "cpu": shape.cpu,
        "memory": shape.memory,
        "pods": shape.pods,
        "ephemeral-storage": "1Ti",
    }
    return {
        "capacity": resources,
        "allocatable": resources,
        "addresses": [
            {"type": "InternalIP", "address": shape.host_ip},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": shape.kubelet_port}},
        "nodeInfo": {
            "machineID": name,
            "systemUUID": name,
            "bootID": name,
            "kernelVersion": platform.release(),
            "osImage": "kubedag node agent",
            "containerRuntimeVersion": "kubedag://1",
            "kubeletVersion": "v1.20.2",
            "kubeProxyVersion": "v1.20.2",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "conditions": _conditions(
            "True", "KubeletReady", "kubedag node agent is posting ready status"
        ),
    }


class NodeKeeper:
    """Registers, adopts, heartbeats and loses the agent's Nodes."""

    def __init__(
        self,
        *,
        api: RawApi,
        agent: str,
        shape: NodeShape,
        on_adopt: Callable[[str], None],
        on_lost: Callable[[str, str], None],
    ) -> None:
        self._api, self._agent, self._shape = api, agent, shape
        self._on_adopt, self._on_lost = on_adopt, on_lost
        self._ready: set[str] = set()
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def nodes(self) -> set[str]:
        with self._lock:
            return set(self._ready)

    def is_managed(self, name: str) -> bool:
        with self._lock:
            return name in self._ready

    def register(self, name: str) -> None:
        """Create the Node if missing (or revive a lost one) and make it Ready."""
        try:
            self._api.request("POST", "/api/v1/nodes", body=node_manifest(name, agent=self._agent))
        except ApiError as error:
            if error.status != 409:
                raise
            self._api.request(
                "PATCH",
                f"/api/v1/nodes/{name}",
                body={
                    "metadata": {
                        "annotations": {NODE_LOST: None},
                        "labels": {NODE_AGENT_LABEL: self._agent},
                    }
                },
                content_type="application/merge-patch+json",
            )
        self.adopt(name)

    def adopt(self, name: str) -> None:
        with self._lock:
            self._lost.discard(name)
        self._api.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            body={"status": node_status(self._shape, name)},
            content_type="application/strategic-merge-patch+json",
        )
        node = self._api.request("GET", f"/api/v1/nodes/{name}")
        taints = node.get("spec", {}).get("taints") or []
        kept = [t for t in taints if t.get("key") not in NOT_READY_TAINTS]
        if kept != taints:
            self._api.request(
                "PATCH",
                f"/api/v1/nodes/{name}",
                body={"spec": {"taints": kept}},
                content_type="application/merge-patch+json",
            )
        self._renew_lease(name)
        with self._lock:
            self._ready.add(name)
        log.info("node %s is Ready", name)
        try:
            self._on_adopt(name)
        except Exception:
            # Not adopted after all: the node watch lists again and adopts it again.
            with self._lock:
                self._ready.discard(name)
            raise

    def observe(self, node: JSON, *, deleted: bool) -> None:
        """React to a watched Node: adopt new labelled ones, lose ones asked to be lost."""
        name = node["metadata"]["name"]
        if deleted:
            with self._lock:
                self._ready.discard(name)
            return
        outcome = (node["metadata"].get("annotations") or {}).get(NODE_LOST)
        with self._lock:
            known, lost = name in self._ready, name in self._lost
        if outcome and not lost:
            self.lose(name, outcome=outcome)
        elif not outcome and not known and not lost:
            self.adopt(name)

    def lose(self, name: str, *, outcome: str) -> None:
        with self._lock:
            self._ready.discard(name)
            self._lost.add(name)
        log.warning("losing node %s (%s)", name, outcome)
        self._on_lost(name, outcome)
        if outcome == "vanish":
            try:
                self._api.request("DELETE", f"/api/v1/nodes/{name}")
            except ApiError as error:
                if error.status != 404:
                    raise
            return
        status = {
            "conditions": _conditions(
                "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."
            )
        }
        self._api.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            body={"status": status},
            content_type="application/strategic-merge-patch+json",
        )
        taints = [
            {"key": "node.kubernetes.io/unreachable", "effect": e, "timeAdded": now()}
            for e in ("NoSchedule", "NoExecute")
        ]
        self._api.request(
            "PATCH",
            f"/api/v1/nodes/{name}",
            body={"spec": {"taints": taints}},
            content_type="application/merge-patch+json",
        )

    def heartbeat_forever(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS * random.uniform(0.9, 1.1)):  # noqa: S311
            for name in self.nodes:
                try:
                    self._api.request(
                        "PATCH",
                        f"/api/v1/nodes/{name}/status",
                        body={
                            "status": {
                                "conditions": _conditions(
                                    "True",
                                    "KubeletReady",
                                    "kubedag node agent is posting ready status",
                                )
                            }
                        },
                        content_type="application/strategic-merge-patch+json",
                    )
                    self._renew_lease(name)
                except ApiError as error:
                    # The next beat retries; an apiserver restart must not kill the agent.
                    log.warning("heartbeat of node %s failed: %s", name, error)

    def _renew_lease(self, name: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        stamp = now().replace("Z", ".000000Z")
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": stamp}
        try:
            self._api.request(
                "PATCH", path, body={"spec": spec}, content_type="application/merge-patch+json"
            )
        except ApiError as error:
            if error.status != 404:
                raise
            self._api.request(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                body={
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "namespace": "kube-node-lease"},
                    "spec": spec,
                },
            )
