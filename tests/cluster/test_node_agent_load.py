"""The node agent under load: a 1,000-pod fan-out of real processes, ten rounds in a row,
with no failure of the agent's making.

Every pod has an init container and a main container working in a shared workspace,
a termination message file, and a volume mounted under `/var/run/...` in half of the
pods and under `/run/...` (the same directory on Debian) in the other half. These are
the kinds of mount point that, counted per name and per agent, were removed under
pods still using them: "mount point does not exist", "Unable to read current working
directory". A second node agent runs beside the cluster's own, with a node of its
own, as when `kubedag dev` and the test cluster share a machine: the two agents' pods
share every mount point on the host.

The paths are this test session's own (`/kubedag-load-test-<session>/...`, no
ServiceAccount token), so agents of other clusters on the machine, perhaps of another
kubedag version, and the same test run from another checkout at the same time, cannot
touch them; once every pod is gone, nothing made for them is left on the host.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from controller.base.backoff import Backoff
from controller.devcluster import LocalCluster
from controller.devcluster.cluster import AGENT_USER
from controller.devcluster.readiness import wait_until
from controller.executor.kubeclient import retry_call
from controller.nodeagent.handle import NodeAgentHandle
from tests.fixtures.ports import unused_port

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

SECOND_AGENT = "kubedag-load-agent"
SECOND_NODE = "kubedag-load-node"
# Keeps other tests' pods (the cluster is shared) off the second agent's node.
TAINT = {"key": "kubedag.io/load-test", "value": "true", "effect": "NoSchedule"}

PODS = 1000
ROUNDS = 10
ROUND_TIMEOUT = 240.0
SESSION = uuid.uuid4().hex[:8]
WORKSPACE = f"/kubedag-load-test-{SESSION}/workspace"
EXTRA = (f"/run/kubedag-load-test-{SESSION}", f"/var/run/kubedag-load-test-{SESSION}")
MESSAGE = f"/dev/kubedag-load-test-{SESSION}-termination-log"
INIT = "pwd > init-ran"
# The pause keeps hundreds of pods alive at once, each holding its mount points.
MAIN = (
    f'test -f init-ran && sleep 0.5 && test -d "$EXTRA" && pwd >/dev/null && printf ok > {MESSAGE}'
)
MADE_FOR_THE_PODS = (Path(WORKSPACE).parent, Path(EXTRA[0]), Path(MESSAGE))


def load_pod(name: str, index: int) -> dict[str, Any]:
    extra = EXTRA[index % 2]
    mounts = [
        {"name": "workspace", "mountPath": WORKSPACE},
        {"name": "extra", "mountPath": extra},
    ]
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "tolerations": [{**TAINT, "operator": "Equal"}],
            "volumes": [{"name": "workspace", "emptyDir": {}}, {"name": "extra", "emptyDir": {}}],
            "initContainers": [
                {
                    "name": "checkout",
                    "image": "busybox",
                    "workingDir": WORKSPACE,
                    "command": ["sh", "-c", INIT],
                    "terminationMessagePath": MESSAGE,
                    "volumeMounts": mounts,
                }
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "workingDir": WORKSPACE,
                    "command": ["sh", "-c", MAIN],
                    "terminationMessagePath": MESSAGE,
                    "env": [{"name": "EXTRA", "value": extra}],
                    "volumeMounts": mounts,
                }
            ],
        },
    }


@pytest.fixture
def second_agent(
    local_cluster: LocalCluster, kube: kubernetes.client.ApiClient, tmp_path: Path
) -> Iterator[str]:
    """Another node agent process on this host, with a node of its own; its node's name."""
    pki = local_cluster.pki
    log = (tmp_path / "agent.log").open("wb")
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller",
            "node-agent",
            f"--kubeconfig={local_cluster.config.kubeconfig_for(AGENT_USER)}",
            f"--name={SECOND_AGENT}",
            f"--node={SECOND_NODE}",
            f"--port={unused_port()}",
            f"--tls-cert={pki.kubelet_cert}",
            f"--tls-key={pki.kubelet_key}",
            f"--data-dir={tmp_path / 'agent'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    handle = NodeAgentHandle(
        kubeconfig=local_cluster.kubeconfig, nodes=(SECOND_NODE,), agent=SECOND_AGENT
    )
    try:
        handle.wait_ready(timeout=60)
        kubernetes.client.CoreV1Api(kube).patch_node(
            SECOND_NODE, {"spec": {"taints": [TAINT]}}, _request_timeout=10
        )
        yield SECOND_NODE
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        log.close()
        handle.remove_node(SECOND_NODE)


def failure_of(pod: kubernetes.client.V1Pod) -> str | None:
    """What went wrong with a finished pod, or None if it did what it should."""
    statuses = (pod.status.init_container_statuses or []) + (pod.status.container_statuses or [])
    main = (pod.status.container_statuses or [None])[0]
    message = main.state.terminated.message if main and main.state.terminated else None
    if pod.status.phase == "Succeeded" and message == "ok":
        return None
    states = [
        (s.name, s.state.terminated.exit_code if s.state.terminated else s.state.to_dict())
        for s in statuses
    ]
    return f"{pod.metadata.name}: {pod.status.phase} {pod.status.message or ''} {states}"


def log_of(core: kubernetes.client.CoreV1Api, pod: kubernetes.client.V1Pod) -> str:
    name, namespace = pod.metadata.name, pod.metadata.namespace
    logs = [
        core.read_namespaced_pod_log(name, namespace, container=container, _request_timeout=10)
        for container in ("checkout", "main")
    ]
    return " | ".join(log[-300:] for log in logs)


def create_pod(core: kubernetes.client.CoreV1Api, namespace: str, pod: Any) -> None:
    """Create one pod as the controller does: a busy API server's 5xx (etcd timing out
    under this load) is tried again with the one backoff, and a 409 on a later attempt is
    the pod an earlier, timed-out attempt already created."""
    attempts = 0

    def create() -> None:
        nonlocal attempts
        attempts += 1
        try:
            core.create_namespaced_pod(namespace, pod, _request_timeout=30)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409 or attempts == 1:
                raise

    retry_call(create, backoff=Backoff(), what=f"creating pod {pod['metadata']['name']}")


def run_round(
    core: kubernetes.client.CoreV1Api, namespace: str, number: int
) -> tuple[list[str], set[str]]:
    """The failures of one round, and the nodes its pods ran on."""
    names = [f"r{number}-{index}" for index in range(PODS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: create_pod(core, namespace, load_pod(names[i], i)), range(PODS)))
    deadline = time.monotonic() + ROUND_TIMEOUT
    while True:
        pods = core.list_namespaced_pod(namespace, _request_timeout=60).items
        done = [p for p in pods if p.status.phase in ("Succeeded", "Failed")]
        if len(done) == PODS:
            break
        assert time.monotonic() < deadline, f"round {number}: {len(done)} of {PODS} finished"
        time.sleep(1)
    failures = [
        f"{failure} log: {log_of(core, pod)!r}"
        for pod in done
        if (failure := failure_of(pod)) is not None
    ]
    nodes = {pod.spec.node_name for pod in done}
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0, _request_timeout=60)
    while core.list_namespaced_pod(namespace, limit=1, _request_timeout=30).items:
        assert time.monotonic() < deadline + ROUND_TIMEOUT, f"round {number}: pods not deleted"
        time.sleep(1)
    return failures, nodes


@pytest.mark.timeout(ROUNDS * 2 * ROUND_TIMEOUT)
def test_a_thousand_pod_fan_out_ten_times_has_no_agent_failure(
    kube: kubernetes.client.ApiClient, namespace: str, second_agent: str
) -> None:
    core = kubernetes.client.CoreV1Api(kube)
    for number in range(ROUNDS):
        failures, nodes = run_round(core, namespace, number)
        assert failures == [], f"round {number}: {len(failures)} failed:\n" + "\n".join(
            failures[:10]
        )
        assert len(nodes) == 2, f"round {number} ran on {nodes} only"
    # The last pod releases its mount points after it reports its end: wait for that.
    wait_until(
        lambda: not any(path.exists() for path in MADE_FOR_THE_PODS),
        timeout=30,
        what="the mount points made for the pods to be removed",
        detail=lambda: str([str(p) for p in MADE_FOR_THE_PODS if p.exists()]),
    )
