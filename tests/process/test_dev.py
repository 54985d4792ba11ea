"""`kubedag dev` as a user runs it: a subprocess that runs a sample DAG to success."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from controller.devcluster import LocalCluster
from tests.fixtures.cluster import ExternalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

DEV_TIMEOUT = 240


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
    for task in ("extract", "transform[0]", "transform[1]", "load"):
        assert f"{task} try 1: running" in out or f"{task} try 1: launched" in out
        assert f"{task} try 1: succeeded" in out
    assert f"run {queued.group(1)} of etl-orders succeeded" in out
    results = out.split("results:", 1)[1]
    assert "  load: succeeded" in results
    assert "--- load ---" in results
    # The controller's own log went to its file, not the terminal.
    assert (tmp_path / "dev" / "controller.log").read_text()
