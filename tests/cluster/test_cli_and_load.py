"""The dev-cluster commands against a running local cluster, and the agent under load."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import kubernetes.client
import pytest

from controller.cli import main
from tests.cluster.pods import scripted_pod

pytestmark = pytest.mark.cluster


def _cli(local_cluster, action: str) -> list[str]:
    cfg = local_cluster.config
    return ["dev-cluster", f"--data-dir={cfg.data_dir}", f"--port-base={cfg.port_base}", action]


def test_status_reports_every_component_running(local_cluster, capsys):
    assert main(_cli(local_cluster, "status")) == 0
    out = capsys.readouterr().out
    for name in ("etcd", "kube-apiserver", "kube-scheduler", "node-agent"):
        assert name in out
    assert "stopped" not in out


def test_env_points_kubectl_at_the_cluster(local_cluster, capsys):
    assert main(_cli(local_cluster, "env")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"export KUBECONFIG={local_cluster.kubeconfig}"
    assert lines[1].startswith('export PATH="')
    assert "kubernetes/bin" in lines[1]


def test_up_reuses_a_running_cluster(local_cluster, capsys):
    before = local_cluster.status()
    assert main(_cli(local_cluster, "up")) == 0
    assert local_cluster.status() == before
    assert "starting" not in capsys.readouterr().out


@pytest.mark.usefixtures("node_agent")
def test_two_hundred_scripted_pods_run_to_completion_quickly(kube, namespace):
    core = kubernetes.client.CoreV1Api(kube)
    count = 200
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: core.create_namespaced_pod(
                    namespace, scripted_pod(f"load-{i}", duration="0.2")
                ),
                range(count),
            )
        )
    done = 0
    while time.monotonic() - started < 60:
        pods = core.list_namespaced_pod(namespace).items
        done = sum(p.status.phase == "Succeeded" for p in pods)
        if done == count:
            break
        time.sleep(0.5)
    assert done == count, f"only {done} of {count} pods succeeded within 60s"
