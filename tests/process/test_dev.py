"""`kubedag dev` as a user runs it: a subprocess that runs a sample DAG to success.

One test reuses the session's cluster; the other lets the command start a cluster of its
own, as on a machine where none runs, in a data dir and on ports of its own so the
session's cluster is not disturbed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.devcluster import ClusterConfig, LocalCluster
from controller.devcluster.cluster import COMPONENTS, NODE_AGENT
from tests.fixtures.cluster import ExternalCluster
from tests.fixtures.ports import is_free

pytestmark = [pytest.mark.cluster]

DEV_TIMEOUT = 240
# Ports tried for a cluster of the test's own, away from the dev and test clusters'.
PORT_BASES = range(27000, 27500, 10)


@pytest.mark.usefixtures("node_agent")
def test_dev_runs_the_etl_sample_to_success_with_visible_progress(
    cluster: LocalCluster | ExternalCluster, namespace: str, tmp_path: Path
) -> None:
    env = {**os.environ, "KUBEDAG_INSTANCE": f"dev-{namespace}"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller",
            "dev",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--no-node-agent",
            "--namespace",
            namespace,
            "--data-dir",
            str(tmp_path / "dev"),
            "--timeout",
            str(DEV_TIMEOUT - 30),
        ],
        capture_output=True,
        text=True,
        timeout=DEV_TIMEOUT,
        env=env,
        check=False,
    )

    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    queued = re.search(r"run (\d+) of etl-orders queued at [0-9a-f]{12}", out)
    assert queued is not None, out
    assert re.search(r"web UI: http://127\.0\.0\.1:\d+/ui/", out), out
    for task in ("extract", "transform[0]", "transform[1]", "load"):
        assert f"{task} try 1: running" in out or f"{task} try 1: launched" in out
        assert f"{task} try 1: succeeded" in out
    assert f"run {queued.group(1)} of etl-orders succeeded" in out
    # Progress is told in the order things happened: no task succeeds before its upstreams.
    done_at = {task: out.index(f"{task} try 1: succeeded") for task in ("extract", "load")}
    for item in ("transform[0]", "transform[1]"):
        assert done_at["extract"] < out.index(f"{item} try 1: succeeded") < done_at["load"]
    results = out.split("results:", 1)[1]
    assert "  load: succeeded" in results
    assert "--- load ---" in results
    # The controller's own log went to its file, not the terminal.
    assert (tmp_path / "dev" / "controller.log").read_text()


def _free_port_base() -> int:
    """A port base whose six ports (apiserver, etcd x2, controllers, node agent) are free."""
    for base in PORT_BASES:
        if all(is_free(base + offset) for offset in range(6)):
            return base
    raise AssertionError(f"no six free ports from any of {list(PORT_BASES)}")


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Where `kubedag dev` is to start a cluster; whatever of it still runs is stopped after."""
    local = LocalCluster(ClusterConfig(data_dir=tmp_path / "cluster", port_base=_free_port_base()))
    yield local
    local.down()


def test_dev_starts_a_local_cluster_when_none_runs_and_stops_it_when_asked(
    own_cluster: LocalCluster, tmp_path: Path
) -> None:
    assert not any(own_cluster.status().values())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller",
            "dev",
            "--cluster-dir",
            str(own_cluster.config.data_dir),
            "--port-base",
            str(own_cluster.config.port_base),
            "--data-dir",
            str(tmp_path / "dev"),
            "--stop-cluster",
            "--timeout",
            str(DEV_TIMEOUT - 60),
        ],
        capture_output=True,
        text=True,
        timeout=DEV_TIMEOUT,
        check=False,
    )

    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert f"local control plane started at {own_cluster.config.server_url}" in out
    assert "node agent started (pods run as local processes)" in out
    assert re.search(r"run \d+ of etl-orders succeeded", out), out
    stopped = ", ".join((NODE_AGENT, *reversed(COMPONENTS)))
    assert f"stopped {stopped}" in out
    assert not any(own_cluster.status().values())
