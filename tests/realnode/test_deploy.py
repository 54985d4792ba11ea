"""The controller image built from the Dockerfile runs from `kubectl apply -k` and syncs."""

from __future__ import annotations

import time

import pytest

from tests.deploy.test_rbac import expected_states
from tests.realnode.conftest import Deployment

# Setup may bring the node up and deploy kubedag; a cold machine builds images first.
pytestmark = [pytest.mark.realnode, pytest.mark.timeout(1200)]


def test_the_deployed_controller_syncs_every_sample_dag_over_http_with_the_token(
    deployment: Deployment,
) -> None:
    # The sync writes its checkout under the ConfigMap's dataDir: an image that points
    # the data dir at its read-only root filesystem never gets here.
    wanted = set(expected_states())
    deadline = time.monotonic() + 90
    known: set[str] = set()
    while not wanted <= known:
        with deployment.store.transaction() as uow:
            known = {dag.name for dag in uow.list_dags() if dag.spec is not None}
        if time.monotonic() > deadline:
            raise AssertionError(
                f"DAGs never synced: {sorted(wanted - known)}\n{deployment.controller.diagnosis()}"
            )
        time.sleep(0.5)
    statuses = [status for _, status in deployment.git.requests]
    assert 401 not in statuses or 200 in statuses
    assert any(
        path.endswith("git-upload-pack") and status == 200
        for path, status in deployment.git.requests
    )
