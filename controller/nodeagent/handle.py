"""Control a running node agent through the API alone, from any process.

The agent usually runs as a process of its own (started with the local cluster), so
tests cannot call into it. Everything a test asks of it is expressed on Node objects
it watches: a labelled Node is adopted, an annotated Node is lost. The handle writes
those and waits (bounded) until the agent shows it acted.
"""

from __future__ import annotations

from pathlib import Path

from controller.devcluster.readiness import wait_until
from controller.nodeagent.behaviour import LOST_OUTCOMES, NODE_AGENT_LABEL, NODE_LOST
from controller.nodeagent.nodes import NOT_READY_TAINTS, node_manifest
from controller.nodeagent.rawapi import ApiError, RawApi

DEFAULT_AGENT = "kubedag-node-agent"


class NodeAgentHandle:
    def __init__(
        self, *, kubeconfig: Path, nodes: tuple[str, ...], agent: str = DEFAULT_AGENT
    ) -> None:
        self._api = RawApi(kubeconfig=kubeconfig, pool_size=2)
        self.nodes = nodes
        self.agent = agent

    def node_ready(self, name: str) -> bool:
        try:
            node = self._api.request("GET", f"/api/v1/nodes/{name}")
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        conditions = node.get("status", {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        taints = node.get("spec", {}).get("taints") or []
        return ready and not any(t.get("key") in NOT_READY_TAINTS for t in taints)

    def wait_ready(self, *, timeout: float = 30.0) -> None:
        for name in self.nodes:
            self._wait_node(name, timeout=timeout)

    def _wait_node(self, name: str, *, timeout: float) -> None:
        wait_until(lambda: self.node_ready(name), timeout=timeout, what=f"node {name} to be Ready")

    def add_node(
        self, name: str, *, taints: list[dict[str, str]] | None = None, timeout: float = 30.0
    ) -> None:
        """Create a Node that the agent adopts; taints keep other tests' pods off it."""
        manifest = node_manifest(name, agent=self.agent)
        manifest["metadata"]["labels"][NODE_AGENT_LABEL] = self.agent
        if taints:
            manifest["spec"]["taints"] = taints
        self._api.request("POST", "/api/v1/nodes", body=manifest)
        self._wait_adopted(name, timeout=timeout)

    def adopt_node(self, name: str, *, timeout: float = 30.0) -> None:
        """Label an existing Node for the agent; it runs the pods already bound to it."""
        self._api.request(
            "PATCH",
            f"/api/v1/nodes/{name}",
            body={"metadata": {"labels": {NODE_AGENT_LABEL: self.agent}}},
            content_type="application/merge-patch+json",
        )
        self._wait_adopted(name, timeout=timeout)

    def _wait_adopted(self, name: str, *, timeout: float) -> None:
        wait_until(
            lambda: self.node_ready(name),
            timeout=timeout,
            what=f"node {name} to be adopted by the node agent",
        )

    def remove_node(self, name: str) -> None:
        try:
            self._api.request("DELETE", f"/api/v1/nodes/{name}")
        except ApiError as error:
            if error.status != 404:
                raise

    def lose_node(self, name: str, *, outcome: str = "failed", timeout: float = 30.0) -> None:
        """Lose a node: its pods vanish ("vanish") or turn Failed/Unknown with reason NodeLost.

        Returns once the agent has acted: the Node is gone, or its Ready condition is Unknown.
        """
        if outcome not in LOST_OUTCOMES:
            raise ValueError(f"outcome must be one of {LOST_OUTCOMES}, got {outcome!r}")
        self._api.request(
            "PATCH",
            f"/api/v1/nodes/{name}",
            body={"metadata": {"annotations": {NODE_LOST: outcome}}},
            content_type="application/merge-patch+json",
        )
        wait_until(
            lambda: self._lost(name, outcome),
            timeout=timeout,
            what=f"the node agent to lose node {name}",
        )

    def _lost(self, name: str, outcome: str) -> bool:
        try:
            node = self._api.request("GET", f"/api/v1/nodes/{name}")
        except ApiError as error:
            if error.status == 404:
                return outcome == "vanish"
            raise
        conditions = node.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "Unknown" for c in conditions)
