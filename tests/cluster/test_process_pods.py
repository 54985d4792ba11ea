"""Process-mode pods: real commands, a git checkout in an init container, real logs."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import kubernetes.client
import pytest

from tests.cluster.pods import finished, main_state, process_pod, wait_gone, wait_pod

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("node_agent")]

EXTRACT = """\
import os, sys
print("extracting for", os.environ["STAGE"], os.environ["POD"])
print("to stderr", file=sys.stderr)
with open("/dev/termination-log", "w") as f:
    f.write('{"rows": 42}')
"""


@pytest.fixture
def core(kube: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(kube)


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A git repository with jobs/extract.py and the commit that holds it."""
    path = tmp_path / "dags"
    (path / "jobs").mkdir(parents=True)
    (path / "jobs" / "extract.py").write_text(EXTRACT)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=path,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "extract")
    return path, git("rev-parse", "HEAD")


def worker_pod(name: str, *, repo: Path, commit: str) -> dict:
    fetch = (
        "set -e; git init -q /workspace/repo && cd /workspace/repo && "
        f"git fetch -q {repo} {commit} && git checkout -q FETCH_HEAD"
    )
    workspace = [{"name": "workspace", "mountPath": "/workspace"}]
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "workspace", "emptyDir": {}}],
            "initContainers": [
                {
                    "name": "checkout",
                    "image": "alpine/git",
                    "command": ["sh", "-c", fetch],
                    "volumeMounts": workspace,
                }
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.12-slim",
                    "workingDir": "/workspace/repo",
                    "command": ["python3", "jobs/extract.py"],
                    "env": [
                        {"name": "STAGE", "value": "prod"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "volumeMounts": workspace,
                }
            ],
        },
    }


def test_worker_pod_checks_out_the_commit_and_reports_its_result(core, namespace, repo):
    path, commit = repo
    core.create_namespaced_pod(namespace, worker_pod("extract", repo=path, commit=commit))
    pod = wait_pod(core, namespace, "extract", finished, timeout=30)
    assert pod.status.phase == "Succeeded", pod.status
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0
    assert main_state(pod).terminated.message == '{"rows": 42}'
    log = core.read_namespaced_pod_log("extract", namespace, container="main")
    assert "extracting for prod extract\n" in log
    assert "to stderr\n" in log


def test_exit_code_of_the_process_fails_the_pod(core, namespace):
    core.create_namespaced_pod(namespace, process_pod("exit", command=["sh", "-c", "exit 7"]))
    pod = wait_pod(core, namespace, "exit", finished)
    assert (pod.status.phase, main_state(pod).terminated.exit_code) == ("Failed", 7)


def test_env_from_secret_and_configmap(core, namespace):
    core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "creds"}, "data": {"token": base64.b64encode(b"s3cr3t").decode()}},
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cfg"}, "data": {"region": "eu"}}
    )
    pod = process_pod(
        "env",
        command=["sh", "-c", 'echo "$TOKEN $APP_region"'],
        container={
            "env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
            ],
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "APP_"}],
        },
    )
    core.create_namespaced_pod(namespace, pod)
    wait_pod(core, namespace, "env", finished)
    assert core.read_namespaced_pod_log("env", namespace) == "s3cr3t eu\n"


def test_missing_secret_waits_with_create_container_config_error(core, namespace):
    pod = process_pod(
        "nosecret",
        command=["true"],
        container={
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
        },
    )
    core.create_namespaced_pod(namespace, pod)
    pod = wait_pod(
        core,
        namespace,
        "nosecret",
        lambda p: (
            bool(p.status.container_statuses)
            and main_state(p).waiting is not None
            and main_state(p).waiting.reason == "CreateContainerConfigError"
        ),
    )
    assert 'secret "absent" not found' in main_state(pod).waiting.message


def test_result_path_env_and_fallback_to_logs_on_error(core, namespace):
    pod = process_pod(
        "fallback",
        command=["sh", "-c", 'test -f "$KUBEDAG_RESULT_PATH"; echo last words; exit 2'],
        container={"terminationMessagePolicy": "FallbackToLogsOnError"},
    )
    core.create_namespaced_pod(namespace, pod)
    pod = wait_pod(core, namespace, "fallback", finished)
    assert main_state(pod).terminated.exit_code == 2
    assert main_state(pod).terminated.message == "last words\n"


def test_active_deadline_kills_the_process(core, namespace):
    pod = process_pod("sleeper", command=["sleep", "60"], activeDeadlineSeconds=1)
    core.create_namespaced_pod(namespace, pod)
    pod = wait_pod(core, namespace, "sleeper", finished)
    assert (pod.status.phase, pod.status.reason) == ("Failed", "DeadlineExceeded")
    assert main_state(pod).terminated.exit_code == 143


def test_deletion_sends_sigterm_and_removes_the_pod(core, namespace):
    pod = process_pod(
        "term", command=["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    )
    core.create_namespaced_pod(namespace, pod)
    wait_pod(core, namespace, "term", lambda p: p.status.phase == "Running")
    core.delete_namespaced_pod("term", namespace, grace_period_seconds=10)
    wait_gone(core, namespace, "term")


def test_logs_follow_tail_and_timestamps(core, namespace):
    script = "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done"
    core.create_namespaced_pod(namespace, process_pod("talk", command=["sh", "-c", script]))
    wait_pod(core, namespace, "talk", lambda p: p.status.phase in ("Running", "Succeeded"))
    followed = core.read_namespaced_pod_log("talk", namespace, follow=True, _request_timeout=20)
    assert followed == "".join(f"line {i}\n" for i in range(1, 6))
    assert core.read_namespaced_pod_log("talk", namespace, tail_lines=2) == "line 4\nline 5\n"
    stamped = core.read_namespaced_pod_log("talk", namespace, timestamps=True).splitlines()
    assert stamped[0].endswith(" line 1")
    assert stamped[0].split(" ")[0].endswith("Z")
