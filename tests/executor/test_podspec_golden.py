"""Rendered worker pods compared with reviewed YAML under tests/executor/golden/.

A change to the pod builder shows up here as a diff of whole pods, which is how an
operator reads them. After an intended change, regenerate with
`KUBEDAG_UPDATE_GOLDEN=1 .venv/bin/pytest tests/executor/test_podspec_golden.py`
(each case whose file it rewrites fails), review the diff of the YAML files, and run
again without the variable before committing them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.base.tries import TryKey
from controller.executor.podspec import PodConfig, PodIdentity, RenderedCommand, build_pod
from controller.spec.model import Task

GOLDEN = Path(__file__).parent / "golden"
SHA = "3f2c8e1d9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
REPO = "https://git.example.com/data/dags.git"


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the checkout script) as `|` blocks, so a diff reads line by line."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def _identity(task: str, **changes: Any) -> PodIdentity:
    fields: dict[str, Any] = {
        "dag": "daily-sales",
        "run_id": 1042,
        "task": task,
        "item_index": 0,
        "try_number": 1,
        "revision": SHA,
        "controller": "kubedag-0",
    }
    fields.update(changes)
    key = TryKey(*(fields.pop(name) for name in ("run_id", "task", "item_index", "try_number")))
    return PodIdentity(key=key, **fields)


def _simple() -> dict[str, Any]:
    task = Task(
        name="extract",
        image="python:3.12-slim",
        command=("python", "jobs/extract.py", "--date", "{{ run.logicalDate }}"),
        timeout_seconds=3600,
    )
    rendered = RenderedCommand(command=("python", "jobs/extract.py", "--date", "2026-01-02"))
    return build_pod(
        task=task,
        identity=_identity("extract"),
        rendered=rendered,
        config=PodConfig(repo_url=REPO, dags_path="sample-dags"),
    )


def _no_checkout() -> dict[str, Any]:
    task = Task(
        name="notify",
        image="registry.example.com/notifier:1.4",
        args=("--run", "{{ run.id }}"),
        checkout=False,
    )
    return build_pod(
        task=task,
        identity=_identity("notify"),
        rendered=RenderedCommand(args=("--run", "1042")),
        config=PodConfig(repo_url=REPO, dags_path="sample-dags"),
    )


def _fan_out() -> dict[str, Any]:
    env = ({"name": "STAGE", "value": "prod"}, {"name": "ITEM", "value": "{{ item }}"})
    task = Task(
        name="transform",
        image="python:3.12-slim",
        command=("python", "jobs/transform.py", "{{ item }}"),
        env=env,
        env_from=({"secretRef": {"name": "warehouse-creds"}},),
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        timeout_seconds=600,
        with_items=("orders", "refunds"),
        pod_overrides={
            "nodeSelector": {"pool": "etl"},
            "serviceAccountName": "loader",
            "tolerations": [{"key": "etl", "operator": "Exists", "effect": "NoSchedule"}],
            "labels": {"team": "data"},
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        },
    )
    rendered = RenderedCommand(
        command=("python", "jobs/transform.py", "refunds"),
        env=({"name": "STAGE", "value": "prod"}, {"name": "ITEM", "value": "refunds"}),
    )
    return build_pod(
        task=task,
        identity=_identity(
            "transform", item_index=1, try_number=3, dag_file="teams/sales/daily-sales.yaml"
        ),
        rendered=rendered,
        config=PodConfig(repo_url=REPO, dags_path="sample-dags", namespace="etl"),
    )


def _operator_template() -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"cost-center": "analytics"}},
        "spec": {
            "priorityClassName": "batch",
            "imagePullSecrets": [{"name": "registry"}],
            "containers": [{"name": "task", "env": [{"name": "TZ", "value": "UTC"}]}],
        },
    }
    config = PodConfig(
        repo_url=REPO,
        namespace="kubedag-workers",
        git_secret_name="dags-repo-token",
        git_secret_key="token",
        pod_template=template,
        security_defaults=False,
        service_account_name="kubedag-worker",
        image_pull_policy="IfNotPresent",
        init_image="registry.example.com/git:2.45.2",
        extra_labels={"environment": "staging"},
        extra_annotations={"example.com/owner": "data-platform"},
    )
    task = Task(name="report", image="registry.example.com/report:1.4", working_dir="reports")
    return build_pod(
        task=task,
        identity=_identity("report"),
        rendered=RenderedCommand(args=("--format", "pdf")),
        config=config,
    )


def _limit_lengths() -> dict[str, Any]:
    dag = "a-very-long-dag-name-that-uses-every-one-of-the-63-characters-x"
    task_name = "a-very-long-task-name-that-uses-every-one-of-the-63-characters"
    task = Task(name=task_name, image="busybox:1.36", command=("true",))
    identity = _identity(
        task_name,
        dag=dag,
        run_id=9_223_372_036_854_775_807,
        item_index=99_999,
        try_number=12,
        controller="kubedag-controller-7d9f8b6c5d-" + "x" * 40,
    )
    return build_pod(
        task=task,
        identity=identity,
        rendered=RenderedCommand(command=task.command),
        config=PodConfig(repo_url="ssh://git@git.example.com/data/dags.git"),
    )


CASES = {
    "simple": _simple,
    "fan-out-with-overrides": _fan_out,
    "operator-template-and-credentials": _operator_template,
    "names-at-the-length-limits": _limit_lengths,
    "without-a-checkout": _no_checkout,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_rendered_pod_matches_its_reviewed_golden_file(case: str) -> None:
    pod = CASES[case]()
    path = GOLDEN / f"{case}.yaml"
    golden = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    if pod != golden and os.environ.get("KUBEDAG_UPDATE_GOLDEN") == "1":
        # Update mode still fails: a rewritten golden file is reviewed, then the test is
        # run again without the variable, so a run that rewrote a file never passes.
        path.write_text(
            yaml.dump(pod, Dumper=_LiteralDumper, sort_keys=False, width=100), encoding="utf-8"
        )
        pytest.fail(f"rewrote {path.name}: review its diff, then run without KUBEDAG_UPDATE_GOLDEN")
    assert pod == golden
