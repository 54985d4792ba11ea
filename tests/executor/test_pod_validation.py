"""Worker pods pass the real API server's validation (server-side dry run, nothing runs).

Golden files prove the builder is stable; only the API server proves the pods are
right: field names, DNS-1123 names, label values, env and volume references, security
fields. Every task instance of every sample DAG is rendered the way the engine renders
it and created with `dryRun=All`, as are pods whose names are at the length limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from controller.base.states import RunType
from controller.base.tries import TryKey
from controller.devcluster.readiness import admits_pods, wait_until
from controller.engine.records import RunIdentity
from controller.engine.rendering import render_task
from controller.executor.podspec import (
    PodConfig,
    PodIdentity,
    Rendered,
    RenderedCommand,
    build_pod,
)
from controller.spec.model import JSON, Dag, Param, ParamType, Task
from controller.spec.validate import LoadedDag, validate_paths

pytestmark = pytest.mark.cluster

REPOSITORY = Path(__file__).resolve().parents[2]
SHA = "9b3e5a1c7d2f4e6a8b0c1d3e5f7a9b2c4d6e8f01"
REPO_URL = "https://git.example.com/data/dags.git"
PLACEHOLDERS: dict[ParamType, JSON] = {
    ParamType.STRING: "value",
    ParamType.INTEGER: 1,
    ParamType.NUMBER: 1.5,
    ParamType.BOOLEAN: True,
    ParamType.ARRAY: ["a", "b"],
    ParamType.OBJECT: {"key": "value"},
}


def _sample_dags() -> tuple[LoadedDag, ...]:
    report = validate_paths([REPOSITORY / "sample-dags"], root=REPOSITORY)
    assert report.ok, [str(problem) for problem in report.problems]
    assert report.dags, "no sample DAGs found"
    return report.dags


SAMPLES = _sample_dags()


def _param_value(param: Param) -> JSON:
    if param.default is not None:
        return param.default
    if param.enum:
        return param.enum[0]
    return PLACEHOLDERS[param.type]


# A dynamic fan-out's items exist only at run time: each sample task that has one names
# items shaped like its upstream's real output here.
DYNAMIC_ITEMS: dict[tuple[str, str], tuple[JSON, ...]] = {
    ("partition-load", "load-partition"): (
        {"table": "orders", "day": "2026-01-02"},
        {"table": "customers", "day": "2026-01-02"},
    ),
}


def _items(dag: Dag, task: Task) -> tuple[JSON, ...]:
    if task.with_items is not None:
        return task.with_items
    if task.items_from is None:
        return (None,)
    assert (dag.name, task.name) in DYNAMIC_ITEMS, (
        f"{dag.name}/{task.name} fans out at run time: add its items to DYNAMIC_ITEMS"
    )
    return DYNAMIC_ITEMS[dag.name, task.name]


def _placeholder_result(dag: Dag, task: Task) -> JSON:
    # Downstream templates read a fan-out's results as one array in item order.
    return ["result"] * len(_items(dag, task)) if task.fans_out else "result"


def _instances(dag: Dag, *, run_id: int) -> Iterator[tuple[Task, int, Rendered]]:
    identity = RunIdentity(
        run_id=run_id,
        dag_name=dag.name,
        logical_date=datetime(2026, 1, 2, 3, 0, tzinfo=UTC),
        revision=SHA,
        run_type=RunType.SCHEDULED,
        params={param.name: _param_value(param) for param in dag.params},
    )
    results = {task.name: _placeholder_result(dag, task) for task in dag.tasks}
    for task in dag.tasks:
        for item_index, item in enumerate(_items(dag, task)):
            rendered = render_task(
                task, identity=identity, item_index=item_index, task_results=results, item=item
            )
            yield task, item_index, rendered


def _ensure_service_accounts(kube: kubernetes.client.ApiClient, ns: str, pods: list[Any]) -> None:
    """The ServiceAccount admission plugin rejects pods naming an account that is missing."""
    core = kubernetes.client.CoreV1Api(kube)
    names = {pod["spec"].get("serviceAccountName") for pod in pods} - {None, "default"}
    for name in sorted(names):
        core.create_namespaced_service_account(
            ns, {"metadata": {"name": name}}, _request_timeout=10
        )
    for name in sorted(names):
        wait_until(
            lambda name=name: admits_pods(core, ns, service_account=name),
            timeout=30,
            what=f"the token of ServiceAccount {ns}/{name}",
        )


def _dry_run_create(kube: kubernetes.client.ApiClient, ns: str, pods: list[Any]) -> None:
    _ensure_service_accounts(kube, ns, pods)
    core = kubernetes.client.CoreV1Api(kube)
    refused = []
    for pod in pods:
        try:
            created = core.create_namespaced_pod(ns, pod, dry_run="All", _request_timeout=10)
        except kubernetes.client.ApiException as error:
            refused.append(f"{pod['metadata']['name']}: {error.status} {error.body}")
            continue
        assert created.metadata.name == pod["metadata"]["name"]
        assert created.metadata.finalizers == ["kubedag.io/result"]
    assert not refused, "\n".join(refused)
    assert core.list_namespaced_pod(ns, _request_timeout=10).items == [], "dry run created pods"


@pytest.mark.parametrize("loaded", SAMPLES, ids=[loaded.dag.name for loaded in SAMPLES])
def test_every_task_instance_of_a_sample_dag_passes_the_api_server(
    loaded: LoadedDag, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    config = PodConfig(
        repo_url=REPO_URL,
        namespace=namespace,
        git_secret_name="dags-repo-token",
    )
    pods = []
    for task, item_index, rendered in _instances(loaded.dag, run_id=1042):
        identity = PodIdentity(
            dag=loaded.dag.name,
            key=TryKey(1042, task.name, item_index, 1),
            revision=SHA,
            controller="kubedag-0",
            dag_file=loaded.path,
        )
        pods.append(build_pod(task=task, identity=identity, rendered=rendered, config=config))
    _dry_run_create(kube, namespace, pods)


def test_names_at_the_length_limits_pass_the_api_server(
    kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    dag, task_name = "d" * 63, "t" * 62 + "9"
    task = Task(name=task_name, image="busybox:1.36", command=("true",), timeout_seconds=60)
    config = PodConfig(repo_url=REPO_URL, namespace=namespace, dags_path="a/b")
    pods = [
        build_pod(
            task=task,
            identity=PodIdentity(
                dag=dag,
                key=TryKey(run_id, task_name, item_index, try_number),
                revision=SHA,
                controller="kubedag-controller-" + "c" * 80,
            ),
            rendered=RenderedCommand(command=task.command),
            config=config,
        )
        for run_id, item_index, try_number in [
            (1, 0, 1),
            (2**63 - 1, 0, 1),
            (2**63 - 1, 10**6, 10**4),
            (10**40, 10**40, 10**40),
        ]
    ]
    _dry_run_create(kube, namespace, pods)


def test_a_pod_built_on_an_operator_template_passes_the_api_server(
    kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    template = {
        "metadata": {"labels": {"cost-center": "analytics"}},
        "spec": {
            "imagePullSecrets": [{"name": "registry"}],
            "tolerations": [{"key": "batch", "operator": "Exists"}],
        },
    }
    task = Task(name="report", image="busybox:1.36", args=("--quiet",), working_dir="/app")
    config = PodConfig(repo_url=REPO_URL, namespace=namespace, pod_template=template)
    identity = PodIdentity(
        dag="reports",
        key=TryKey(5, "report", 0, 1),
        revision=SHA,
        controller="kubedag-0",
    )
    pod = build_pod(
        task=task, identity=identity, rendered=RenderedCommand(args=task.args), config=config
    )
    _dry_run_create(kube, namespace, [pod])


def test_the_dry_run_really_validates(kube: kubernetes.client.ApiClient, namespace: str) -> None:
    # The control for the tests above: the same call refuses a pod the builder would
    # never make, so their passing means something.
    task = Task(name="t", image="busybox:1.36")
    identity = PodIdentity(dag="d", key=TryKey(1, "t", 0, 1), revision=SHA, controller="c")
    pod = build_pod(
        task=task,
        identity=identity,
        rendered=RenderedCommand(),
        config=PodConfig(repo_url=REPO_URL, namespace=namespace),
    )
    pod["metadata"]["labels"]["kubedag.io/task"] = "x" * 64
    with pytest.raises(kubernetes.client.ApiException) as refused:
        kubernetes.client.CoreV1Api(kube).create_namespaced_pod(
            namespace, pod, dry_run="All", _request_timeout=10
        )
    assert refused.value.status == 422
