"""Pod outcome classification, table-driven over pod JSON shaped like the API serves it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.base.states import FailureKind
from controller.executor.outcome import RESULT_LIMIT, OutcomePhase, PodOutcome, classify

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T0 = "2026-03-01T11:58:00Z"
T1 = "2026-03-01T11:59:00Z"
T2 = "2026-03-01T11:59:30Z"


def pod(
    *,
    phase: str = "Pending",
    init: dict[str, Any] | None = None,
    main: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    node: str | None = "agent-0",
    **status: Any,
) -> dict[str, Any]:
    """A worker pod as the API returns it, with only the given container states."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "daily-sales-extract-0-1-3f9a2c",
            "namespace": "kubedag",
            "resourceVersion": "4711",
            "creationTimestamp": T0,
            "labels": {"kubedag.io/dag": "daily-sales", "kubedag.io/task": "extract"},
        },
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": "git-checkout", "image": "alpine/git:2.43"}],
            "containers": [{"name": "task", "image": "python:3.12-slim"}],
        },
        "status": {"phase": phase, "qosClass": "Burstable", **status},
    }
    if node:
        body["spec"]["nodeName"] = node
    if conditions is not None:
        body["status"]["conditions"] = conditions
    if init is not None:
        body["status"]["initContainerStatuses"] = [
            {"name": "git-checkout", "image": "alpine/git:2.43", "ready": False, **init}
        ]
    if main is not None:
        body["status"]["containerStatuses"] = [
            {"name": "task", "image": "python:3.12-slim", "restartCount": 0, **main}
        ]
    return body


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"state": {"waiting": {"reason": reason, "message": message}}}


def terminated(exit_code: int, reason: str, message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": T1,
        "finishedAt": T2,
        "containerID": "containerd://abc",
    }
    if message is not None:
        state["message"] = message
    return {"state": {"terminated": state}}


RUNNING_MAIN = {"state": {"running": {"startedAt": T1}}, "ready": True, "started": True}
CHECKED_OUT = terminated(0, "Completed")


def unschedulable(since: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "lastTransitionTime": since,
            "message": "0/3 nodes are available: 3 node(s) didn't match node selector.",
        }
    ]


CASES: list[tuple[str, dict[str, Any], bool, OutcomePhase, FailureKind | None, str | None]] = [
    ("just created", pod(node=None), False, OutcomePhase.PENDING, None, None),
    (
        "checking out",
        pod(init={"state": {"running": {"startedAt": T0}}}, main=waiting("PodInitializing")),
        False,
        OutcomePhase.PENDING,
        None,
        None,
    ),
    (
        "main container running",
        pod(phase="Running", init=CHECKED_OUT, main=RUNNING_MAIN),
        False,
        OutcomePhase.RUNNING,
        None,
        None,
    ),
    (
        "exited zero",
        pod(phase="Succeeded", init=CHECKED_OUT, main=terminated(0, "Completed", '{"rows": 3}')),
        False,
        OutcomePhase.SUCCEEDED,
        None,
        None,
    ),
    (
        "exited non-zero",
        pod(phase="Failed", init=CHECKED_OUT, main=terminated(2, "Error", "Traceback ...")),
        False,
        OutcomePhase.FAILED,
        FailureKind.TASK,
        "Error",
    ),
    (
        "out of memory",
        pod(phase="Failed", init=CHECKED_OUT, main=terminated(137, "OOMKilled")),
        False,
        OutcomePhase.FAILED,
        FailureKind.TASK,
        "OOMKilled",
    ),
    (
        "deadline after start",
        pod(
            phase="Failed",
            reason="DeadlineExceeded",
            message="Pod was active on the node longer than the specified deadline",
            init=CHECKED_OUT,
            main=terminated(137, "Error"),
        ),
        False,
        OutcomePhase.FAILED,
        FailureKind.TASK,
        "DeadlineExceeded",
    ),
    (
        "deadline during checkout",
        pod(
            phase="Failed",
            reason="DeadlineExceeded",
            init={"state": {"running": {"startedAt": T0}}},
            main=waiting("PodInitializing"),
        ),
        False,
        OutcomePhase.FAILED,
        FailureKind.INFRA,
        "DeadlineExceeded",
    ),
    *[
        (
            f"main container {reason}",
            pod(init=CHECKED_OUT, main=waiting(reason, "Back-off pulling image")),
            False,
            OutcomePhase.FAILED,
            FailureKind.INFRA,
            reason,
        )
        for reason in (
            "ImagePullBackOff",
            "ErrImagePull",
            "ErrImageNeverPull",
            "CreateContainerConfigError",
            "CreateContainerError",
            "InvalidImageName",
        )
    ],
    (
        "init container cannot pull",
        pod(init=waiting("ErrImagePull", "not found"), main=waiting("PodInitializing")),
        False,
        OutcomePhase.FAILED,
        FailureKind.INFRA,
        "ErrImagePull",
    ),
    (
        "git checkout failed",
        pod(
            phase="Failed",
            init=terminated(128, "Error", "fatal: couldn't find remote ref 1a2b3c"),
            main=waiting("PodInitializing"),
        ),
        False,
        OutcomePhase.FAILED,
        FailureKind.INFRA,
        "GitCheckoutFailed",
    ),
    (
        "unschedulable within timeout",
        pod(node=None, conditions=unschedulable("2026-03-01T11:59:50Z")),
        False,
        OutcomePhase.PENDING,
        None,
        None,
    ),
    (
        "unschedulable past timeout",
        pod(node=None, conditions=unschedulable(T0)),
        False,
        OutcomePhase.FAILED,
        FailureKind.INFRA,
        "Unschedulable",
    ),
    (
        "node lost before start",
        pod(phase="Failed", reason="NodeLost", init=CHECKED_OUT, main=waiting("ContainerCreating")),
        False,
        OutcomePhase.FAILED,
        FailureKind.INFRA,
        "NodeLost",
    ),
    (
        "phase unknown before start",
        pod(phase="Unknown", main=waiting("ContainerCreating")),
        False,
        OutcomePhase.FAILED,
        FailureKind.INFRA,
        "NodeLost",
    ),
    (
        "evicted while running",
        pod(phase="Failed", reason="Evicted", init=CHECKED_OUT, main=RUNNING_MAIN),
        False,
        OutcomePhase.FAILED,
        FailureKind.TASK,
        "Evicted",
    ),
    (
        "deleted before start",
        pod(init={"state": {"running": {"startedAt": T0}}}),
        True,
        OutcomePhase.FAILED,
        FailureKind.INFRA,
        "PodDeleted",
    ),
    (
        "deleted while running",
        pod(phase="Running", init=CHECKED_OUT, main=RUNNING_MAIN),
        True,
        OutcomePhase.FAILED,
        FailureKind.TASK,
        "PodDeleted",
    ),
    (
        "deleted after success",
        pod(phase="Succeeded", init=CHECKED_OUT, main=terminated(0, "Completed", "ok")),
        True,
        OutcomePhase.SUCCEEDED,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("body", "deleted", "phase", "kind", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_classification(
    body: dict[str, Any],
    deleted: bool,
    phase: OutcomePhase,
    kind: FailureKind | None,
    reason: str | None,
) -> None:
    outcome = classify(body, now=NOW, unschedulable_timeout=60, deleted=deleted)
    assert (outcome.phase, outcome.kind, outcome.reason) == (phase, kind, reason)


def test_success_carries_result_exit_code_times_and_node() -> None:
    body = pod(phase="Succeeded", init=CHECKED_OUT, main=terminated(0, "Completed", "s3://x/1"))
    assert classify(body, now=NOW, unschedulable_timeout=60) == PodOutcome(
        phase=OutcomePhase.SUCCEEDED,
        exit_code=0,
        result="s3://x/1",
        started_at=datetime(2026, 3, 1, 11, 59, tzinfo=UTC),
        finished_at=datetime(2026, 3, 1, 11, 59, 30, tzinfo=UTC),
        node="agent-0",
    )


@pytest.mark.parametrize("size", [RESULT_LIMIT, RESULT_LIMIT + 1])
def test_a_result_the_kubelet_may_have_cut_fails_the_try(size: int) -> None:
    body = pod(phase="Succeeded", init=CHECKED_OUT, main=terminated(0, "Completed", "x" * size))
    outcome = classify(body, now=NOW, unschedulable_timeout=60)
    assert (outcome.phase, outcome.kind, outcome.reason) == (
        OutcomePhase.FAILED,
        FailureKind.TASK,
        "ResultTooLarge",
    )
    assert outcome.result is None
    assert "4096-byte limit" in (outcome.message or "")


def test_a_result_just_under_the_limit_counts_bytes_not_characters() -> None:
    fits = "é" * ((RESULT_LIMIT - 1) // 2)
    body = pod(phase="Succeeded", init=CHECKED_OUT, main=terminated(0, "Completed", fits))
    assert classify(body, now=NOW, unschedulable_timeout=60).result == fits
    over = fits + "é"
    body = pod(phase="Succeeded", init=CHECKED_OUT, main=terminated(0, "Completed", over))
    assert classify(body, now=NOW, unschedulable_timeout=60).reason == "ResultTooLarge"


def test_success_without_termination_message_has_empty_result() -> None:
    body = pod(phase="Succeeded", init=CHECKED_OUT, main=terminated(0, "Completed"))
    assert classify(body, now=NOW, unschedulable_timeout=60).result == ""


def test_task_failure_keeps_exit_code_and_the_log_tail_as_message() -> None:
    body = pod(phase="Failed", init=CHECKED_OUT, main=terminated(3, "Error", "KeyError: 'x'"))
    outcome = classify(body, now=NOW, unschedulable_timeout=60)
    assert (outcome.exit_code, outcome.message) == (3, "KeyError: 'x'")


def test_checkout_failure_names_the_init_container_and_its_message() -> None:
    body = pod(phase="Failed", init=terminated(128, "Error", "fatal: bad object"))
    outcome = classify(body, now=NOW, unschedulable_timeout=60)
    assert outcome.exit_code == 128
    assert outcome.message is not None
    assert "git-checkout" in outcome.message
    assert "fatal: bad object" in outcome.message


def test_image_pull_message_names_the_container() -> None:
    body = pod(init=CHECKED_OUT, main=waiting("ErrImagePull", 'pull "nope:1" failed'))
    message = classify(body, now=NOW, unschedulable_timeout=60).message
    assert message == 'container task: pull "nope:1" failed'


def test_unschedulable_message_says_why_no_node_fits() -> None:
    body = pod(node=None, conditions=unschedulable(T0))
    message = classify(body, now=NOW, unschedulable_timeout=60).message
    assert message is not None
    assert "didn't match node selector" in message


def test_classify_does_not_modify_the_pod() -> None:
    body = pod(phase="Failed", init=CHECKED_OUT, main=terminated(1, "Error"))
    before = copy.deepcopy(body)
    classify(body, now=NOW, unschedulable_timeout=60, deleted=True)
    assert body == before


def test_a_bare_pod_without_status_is_pending() -> None:
    assert classify({"metadata": {"name": "x"}}, now=NOW, unschedulable_timeout=60) == PodOutcome(
        phase=OutcomePhase.PENDING
    )


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (
            pod(init=CHECKED_OUT, main=waiting("ContainerCreating", "mounting volume data")),
            "container task waiting: ContainerCreating (mounting volume data)",
        ),
        (
            pod(init={"state": {"running": {"startedAt": T0}}}, main=waiting("PodInitializing")),
            "the git-checkout init container is still running",
        ),
        (pod(), "no node has reported on it"),
    ],
    ids=["volume", "hung checkout", "silent node"],
)
def test_a_pod_pending_past_the_pending_timeout_fails_as_infra_naming_the_cause(
    body: dict[str, Any], cause: str
) -> None:
    outcome = classify(body, now=NOW, unschedulable_timeout=600, pending_timeout=60)
    assert (outcome.phase, outcome.kind, outcome.reason) == (
        OutcomePhase.FAILED,
        FailureKind.INFRA,
        "PendingTimeout",
    )
    assert outcome.message == f"pending for 120s (limit 60s): {cause}"


def test_a_pod_within_the_pending_timeout_or_started_is_not_failed_by_it() -> None:
    waiting_pod = pod(init=CHECKED_OUT, main=waiting("ContainerCreating"))
    assert classify(waiting_pod, now=NOW, unschedulable_timeout=600, pending_timeout=300).phase is (
        OutcomePhase.PENDING
    )
    assert classify(waiting_pod, now=NOW, unschedulable_timeout=600).phase is OutcomePhase.PENDING
    started = pod(phase="Running", init=CHECKED_OUT, main=RUNNING_MAIN)
    assert classify(started, now=NOW, unschedulable_timeout=600, pending_timeout=1).phase is (
        OutcomePhase.RUNNING
    )
