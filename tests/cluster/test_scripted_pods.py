"""Scripted pods: bound by the real scheduler, driven through realistic statuses."""

from __future__ import annotations

import kubernetes.client
import pytest

from controller.devcluster.cluster import DEFAULT_NODE
from tests.cluster.pods import finished, main_state, scripted_pod, wait_gone, wait_pod

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]


@pytest.fixture
def core(kube: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(kube)


def test_pod_is_bound_by_the_real_scheduler_and_succeeds(core, namespace):
    core.create_namespaced_pod(namespace, scripted_pod("ok", init=True, duration="0.2"))
    pod = wait_pod(core, namespace, "ok", finished)
    assert pod.spec.node_name == DEFAULT_NODE
    scheduled = {c.type: c.status for c in pod.status.conditions}
    assert scheduled["PodScheduled"] == "True"
    assert pod.status.phase == "Succeeded"
    assert pod.status.init_container_statuses[0].state.terminated.reason == "Completed"
    assert main_state(pod).terminated.exit_code == 0


def test_exit_code_and_termination_message_come_from_annotations(core, namespace):
    pod = scripted_pod("fails", exit_code="3", termination_message='{"rows": 7}', log="oh no")
    core.create_namespaced_pod(namespace, pod)
    pod = wait_pod(core, namespace, "fails", finished)
    assert pod.status.phase == "Failed"
    terminated = main_state(pod).terminated
    assert (terminated.exit_code, terminated.reason, terminated.message) == (
        3,
        "Error",
        '{"rows": 7}',
    )
    assert core.read_namespaced_pod_log("fails", namespace) == "oh no\n"


def test_running_pod_reports_running_before_it_terminates(core, namespace):
    core.create_namespaced_pod(namespace, scripted_pod("slow", duration="30"))
    pod = wait_pod(core, namespace, "slow", lambda p: p.status.phase == "Running")
    assert main_state(pod).running.started_at is not None
    assert pod.status.container_statuses[0].ready is True


def test_failing_init_container_fails_the_pod_before_main_starts(core, namespace):
    core.create_namespaced_pod(namespace, scripted_pod("badinit", init=True, init_exit_code="128"))
    pod = wait_pod(core, namespace, "badinit", finished)
    assert pod.status.phase == "Failed"
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 128
    assert main_state(pod).waiting.reason == "PodInitializing"


def test_oom_killed(core, namespace):
    core.create_namespaced_pod(namespace, scripted_pod("oom", failure="OOMKilled"))
    pod = wait_pod(core, namespace, "oom", finished)
    assert (main_state(pod).terminated.reason, main_state(pod).terminated.exit_code) == (
        "OOMKilled",
        137,
    )


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("ImagePullBackOff", "ImagePullBackOff"),
        ("ErrImagePull", "ErrImagePull"),
        ("CreateContainerConfigError", "CreateContainerConfigError"),
    ],
)
def test_waiting_failures_keep_the_pod_pending(core, namespace, failure, reason):
    core.create_namespaced_pod(namespace, scripted_pod("stuck", failure=failure))
    pod = wait_pod(
        core,
        namespace,
        "stuck",
        lambda p: (
            bool(p.status.container_statuses)
            and main_state(p).waiting is not None
            and main_state(p).waiting.reason == reason
        ),
    )
    assert pod.status.phase == "Pending"


def test_node_lost_failure_marks_the_pod_failed(core, namespace):
    core.create_namespaced_pod(namespace, scripted_pod("lost", failure="NodeLost", duration="0.2"))
    pod = wait_pod(core, namespace, "lost", finished)
    assert (pod.status.phase, pod.status.reason) == ("Failed", "NodeLost")


def test_active_deadline_fails_the_pod_with_deadline_exceeded(core, namespace):
    pod = scripted_pod("late", duration="60")
    pod["spec"]["activeDeadlineSeconds"] = 1
    core.create_namespaced_pod(namespace, pod)
    pod = wait_pod(core, namespace, "late", finished)
    assert (pod.status.phase, pod.status.reason) == ("Failed", "DeadlineExceeded")


def test_malformed_annotation_fails_the_pod_with_the_reason(core, namespace):
    core.create_namespaced_pod(namespace, scripted_pod("typo", exit_code="three"))
    pod = wait_pod(core, namespace, "typo", finished)
    assert pod.status.reason == "InvalidScript"
    assert "exit-code" in pod.status.message


def test_deleted_pod_is_stopped_and_removed(core, namespace):
    core.create_namespaced_pod(namespace, scripted_pod("doomed", duration="60"))
    wait_pod(core, namespace, "doomed", lambda p: p.status.phase == "Running")
    core.delete_namespaced_pod("doomed", namespace, grace_period_seconds=5)
    wait_gone(core, namespace, "doomed")


def test_finalizers_keep_a_deleted_pod_until_removed(core, namespace):
    pod = scripted_pod("held", duration="60")
    pod["metadata"]["finalizers"] = ["kubedag.io/test"]
    core.create_namespaced_pod(namespace, pod)
    wait_pod(core, namespace, "held", lambda p: p.status.phase == "Running")
    core.delete_namespaced_pod("held", namespace, grace_period_seconds=5)
    pod = wait_pod(
        core,
        namespace,
        "held",
        lambda p: bool(p.status.container_statuses) and main_state(p).terminated is not None,
    )
    assert pod.metadata.deletion_timestamp is not None
    core.patch_namespaced_pod("held", namespace, {"metadata": {"finalizers": None}})
    wait_gone(core, namespace, "held")
