"""The controller image built from the Dockerfile runs from `kubectl apply -k` and syncs."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from controller.devcluster.readiness import wait_until
from tests.deploy.test_rbac import expected_states
from tests.realnode.conftest import API_TOKEN, Deployment
from tests.realnode.deployment import controller_url

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


def post(path: str, *, token: str | None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(  # noqa: S310 - the controller on loopback
        f"{controller_url()}/api/v1{path}",
        method="POST",
        data=b"{}",
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_api_token_secret_turns_actions_on(deployment: Deployment) -> None:
    # The manifests mount Secret kubedag-api-token where the ConfigMap's api.tokenFile
    # points. An action on a DAG that does not exist changes nothing: with the token it
    # gets past the check to "no such DAG"; without it, it stops at the check.
    wait_until(
        lambda: deployment.controller.ready_pod() is not None,
        timeout=120,
        what="the controller pod to be Ready",
        detail=deployment.controller.diagnosis,
    )
    status, answer = post("/dags/no-such-dag/pause", token=API_TOKEN)
    assert status == 404, answer
    assert "no-such-dag" in answer["error"]
    status, answer = post("/dags/no-such-dag/pause", token="not-the-token")
    assert status == 401, answer
