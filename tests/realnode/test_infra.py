"""Failures of the infrastructure, not the task, on a real kubelet: an image that does not
exist and a pod no node can take. Each is re-queued without spending one of the task's
retries (the DAG allows none), and the reason the kubelet or scheduler gave is recorded.
"""

from __future__ import annotations

import pytest

from controller.base.states import FailureKind
from controller.runtime.manual import trigger_run
from controller.store import TaskInstanceRecord
from tests.realnode.conftest import Deployment
from tests.realnode.runs import synced, task_rows, wait_for

# Setup may bring the node up and deploy kubedag; a cold machine builds images first.
pytestmark = [pytest.mark.realnode, pytest.mark.timeout(1200)]

INFRA_DAG = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata: {name: infra-failures}
spec:
  defaults:
    image: python:3.12-slim
    retries: {limit: 0}
  tasks:
    - name: missing-image
      image: kubedag.local/does-not-exist:1
      command: [python3, -c, "print('never runs')"]
    - name: unschedulable
      command: [python3, -c, "print('never runs')"]
      podOverrides:
        nodeSelector: {kubedag.io/no-such-pool: "true"}
"""
PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"}


@pytest.fixture(scope="module")
def infra_run(deployment: Deployment) -> int:
    (deployment.repository.clone / "sample-dags" / "infra-failures.yaml").write_text(INFRA_DAG)
    deployment.repository.commit("a DAG the infrastructure fails")
    synced(deployment, {"infra-failures"})
    return trigger_run(deployment.store, dag_name="infra-failures", params={}).id


def requeued(deployment: Deployment, run_id: int, task: str) -> list[TaskInstanceRecord] | None:
    """The task's tries once the first failed for the infrastructure and a second exists."""
    tries = sorted(
        (r for r in task_rows(deployment.store, run_id) if r.task_name == task),
        key=lambda r: r.try_number,
    )
    if len(tries) >= 2 and tries[0].failure_kind is not None:
        return tries
    return None


def test_an_image_that_does_not_exist_is_requeued_without_a_task_retry(
    deployment: Deployment, infra_run: int
) -> None:
    tries = wait_for(
        deployment,
        lambda: requeued(deployment, infra_run, "missing-image"),
        timeout=120,
        what="the missing image's first try to fail and a second to be queued",
    )
    first = tries[0]
    assert first.failure_kind is FailureKind.INFRA
    assert first.reason in PULL_REASONS
    assert "does-not-exist" in (first.message or "")


def test_a_pod_no_node_can_take_is_requeued_without_a_task_retry(
    deployment: Deployment, infra_run: int
) -> None:
    tries = wait_for(
        deployment,
        lambda: requeued(deployment, infra_run, "unschedulable"),
        timeout=120,
        what="the unschedulable first try to fail and a second to be queued",
    )
    first = tries[0]
    assert first.failure_kind is FailureKind.INFRA
    assert first.reason == "Unschedulable"
    assert "node" in (first.message or "")
