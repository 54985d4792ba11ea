"""Layer precedence: base pod template, then kubedag's pod, then podOverrides, then identity."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from controller.base.tries import TryKey
from controller.executor.podmerge import load_pod_template, merge
from controller.executor.podspec import PodConfig, PodIdentity, RenderedCommand, build_pod
from controller.spec.model import Task

SHA = "0123456789abcdef0123456789abcdef01234567"
WHO = PodIdentity(
    dag="daily-sales",
    key=TryKey(7, "load", 0, 1),
    revision=SHA,
    controller="kubedag-0",
)
TEMPLATE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "ignored",
        "labels": {"team": "data", "kubedag.io/dag": "spoofed"},
        "annotations": {"cost-center": "42"},
        "finalizers": ["example.com/audit"],
    },
    "spec": {
        "restartPolicy": "Always",
        "priorityClassName": "batch",
        "tolerations": [{"key": "batch", "operator": "Exists"}],
        "nodeSelector": {"pool": "default", "disk": "ssd"},
        "imagePullSecrets": [{"name": "registry"}],
        "volumes": [{"name": "cache", "emptyDir": {}}],
        "containers": [
            {
                "name": "task",
                "image": "template-image",
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                "env": [{"name": "FROM_TEMPLATE", "value": "yes"}],
            },
            {"name": "proxy", "image": "cloud-sql-proxy"},
        ],
    },
}


def build(
    *, overrides: dict[str, Any] | None = None, template: dict[str, Any] | None = TEMPLATE
) -> dict[str, Any]:
    task = Task(
        name="load",
        image="python:3.12-slim",
        command=("python", "load.py"),
        pod_overrides=overrides or {},
    )
    config = PodConfig(repo_url="https://git.example.com/dags.git", pod_template=template)
    return build_pod(
        task=task, identity=WHO, rendered=RenderedCommand(command=task.command), config=config
    )


def task_container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "task")


def test_the_template_contributes_what_kubedag_does_not_set() -> None:
    pod = build()
    assert pod["spec"]["priorityClassName"] == "batch"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["metadata"]["labels"]["team"] == "data"
    assert pod["metadata"]["annotations"]["cost-center"] == "42"
    assert [c["name"] for c in pod["spec"]["containers"]] == ["task", "proxy"]
    assert {"name": "cache", "mountPath": "/cache"} in task_container(pod)["volumeMounts"]
    assert {"name": "FROM_TEMPLATE", "value": "yes"} in task_container(pod)["env"]


def test_kubedags_fields_win_over_the_template() -> None:
    pod = build()
    assert task_container(pod)["image"] == "python:3.12-slim"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["name"] != "ignored"
    assert pod["metadata"]["labels"]["kubedag.io/dag"] == "daily-sales"
    assert pod["metadata"]["finalizers"] == ["example.com/audit", "kubedag.io/result"]
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"cache", "workspace"}


def test_pod_overrides_win_over_template_and_kubedag() -> None:
    pod = build(
        overrides={
            "nodeSelector": {"pool": "etl"},
            "serviceAccountName": "loader",
            "tolerations": [{"key": "etl", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {}},
            "labels": {"team": "warehouse"},
            "annotations": {"cost-center": "7"},
            "volumes": [{"name": "creds", "secret": {"secretName": "warehouse"}}],
            "volumeMounts": [{"name": "creds", "mountPath": "/creds", "readOnly": True}],
        }
    )
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"pool": "etl", "disk": "ssd"}
    assert spec["serviceAccountName"] == "loader"
    assert spec["tolerations"] == [
        {"key": "batch", "operator": "Exists"},
        {"key": "etl", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert spec["affinity"] == {"nodeAffinity": {}}
    assert pod["metadata"]["labels"]["team"] == "warehouse"
    assert pod["metadata"]["annotations"]["cost-center"] == "7"
    assert {v["name"] for v in spec["volumes"]} == {"cache", "workspace", "creds"}
    mounts = {m["name"] for m in task_container(pod)["volumeMounts"]}
    assert mounts == {"cache", "workspace", "creds"}


def test_pod_overrides_cannot_change_kubedags_labels_or_annotations() -> None:
    pod = build(
        overrides={
            "labels": {"kubedag.io/managed-by": "someone", "kubedag.io/run-id": "1"},
            "annotations": {"kubedag.io/revision": "f" * 40},
        }
    )
    assert pod["metadata"]["labels"]["kubedag.io/managed-by"] == "kubedag"
    assert pod["metadata"]["labels"]["kubedag.io/run-id"] == "7"
    assert pod["metadata"]["annotations"]["kubedag.io/revision"] == SHA


@pytest.mark.parametrize("key", ["containers", "initContainers", "restartPolicy"])
def test_pod_overrides_cannot_replace_containers_or_restart_policy(key: str) -> None:
    with pytest.raises(ValueError, match=f"may not set {key}"):
        build(overrides={key: []})


def test_without_a_template_the_pod_is_kubedags_alone() -> None:
    pod = build(template=None)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["task"]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["git-checkout"]


def test_a_named_entry_is_replaced_whole_not_mixed() -> None:
    base = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    over = {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    assert merge(base, over) == {
        "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "B", "value": "2"},
        ]
    }


def test_scalar_lists_are_replaced() -> None:
    assert merge({"command": ["a", "b"]}, {"command": ["c"]}) == {"command": ["c"]}


def test_merge_leaves_its_inputs_untouched() -> None:
    base = {"spec": {"volumes": [{"name": "a", "emptyDir": {}}]}}
    over = {"spec": {"volumes": [{"name": "b", "emptyDir": {}}]}}
    merge(base, over)
    assert base == {"spec": {"volumes": [{"name": "a", "emptyDir": {}}]}}
    assert over == {"spec": {"volumes": [{"name": "b", "emptyDir": {}}]}}


def test_the_merged_pod_shares_nothing_mutable_with_its_layers() -> None:
    base = {"metadata": {"labels": {"a": "1"}}, "spec": {"tolerations": [{"key": "k"}]}}
    over = {"spec": {"nodeSelector": MappingProxyType({"zone": "a"}), "args": ("x", "y")}}
    merged = merge(base, over)
    assert merged == {
        "metadata": {"labels": {"a": "1"}},
        "spec": {"tolerations": [{"key": "k"}], "nodeSelector": {"zone": "a"}, "args": ["x", "y"]},
    }
    merged["metadata"]["labels"]["b"] = "2"
    merged["spec"]["tolerations"][0]["value"] = "v"
    merged["spec"]["nodeSelector"]["zone"] = "b"
    assert base == {"metadata": {"labels": {"a": "1"}}, "spec": {"tolerations": [{"key": "k"}]}}
    assert over["spec"]["nodeSelector"] == {"zone": "a"}


def test_a_template_file_is_loaded_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "pod-template.yaml"
    path.write_text("kind: Pod\nspec:\n  priorityClassName: batch\n", encoding="utf-8")
    assert load_pod_template(path) == {"kind": "Pod", "spec": {"priorityClassName": "batch"}}


def test_a_template_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("kind: Job\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must be kind Pod"):
        load_pod_template(path)
