"""The controller's pod policy: a DAG may not run as the controller or read other Secrets.

Each refusal is a problem at the field that asks, so the push is refused with a
`path:line:col` message before any pod exists; without a policy (a DAG author's
pre-commit hook, which knows no controller) nothing here applies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from controller.spec.podpolicy import PodPolicy, task_violations
from controller.spec.problems import Problem
from controller.spec.validate import check_file, validate_paths
from tests.spec.support import HEADER, problems_of, write

POLICY = PodPolicy(allowed_secrets=frozenset({"warehouse"}))
TASK = HEADER + "  tasks:\n    - name: a\n      image: x\n"
"""A task whose fields start on line 9, indented by 6."""

VALIDATE = (sys.executable, "-m", "controller", "validate")
SECRET_NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)


def refused(text: str, policy: PodPolicy = POLICY) -> list[Problem]:
    return sorted(check_file(text.encode(), path="dag.yaml", policy=policy).problems)


def test_the_controllers_service_account_is_refused_at_its_line_and_column() -> None:
    text = TASK + "      podOverrides:\n        serviceAccountName: kubedag-controller\n"
    [problem] = refused(text)
    assert str(problem).startswith("dag.yaml:10:29: serviceAccountName 'kubedag-controller'")
    assert problem.field == "spec.tasks[0].podOverrides.serviceAccountName"
    assert "controller's rights" in problem.message


def test_a_configured_controller_account_is_the_one_refused() -> None:
    text = TASK + "      podOverrides:\n        serviceAccountName: kubedag-controller\n"
    assert refused(text, PodPolicy(controller_service_account="ops-kubedag")) == []
    other = TASK + "      podOverrides:\n        serviceAccountName: ops-kubedag\n"
    [problem] = refused(other, PodPolicy(controller_service_account="ops-kubedag"))
    assert problem.line == 10


def test_env_from_a_secret_outside_the_allow_list_is_refused() -> None:
    text = TASK + "      envFrom:\n        - secretRef: {name: kubedag-database}\n"
    [problem] = refused(text)
    assert (problem.line, problem.col) == (10, 29)
    assert problem.field == "spec.tasks[0].envFrom[0].secretRef.name"
    assert "Secret 'kubedag-database' is not in the controller's executor.allowedSecrets" in (
        problem.message
    )
    assert "(allowed: warehouse)" in problem.message


def test_a_secret_key_ref_outside_the_allow_list_is_refused() -> None:
    text = (
        TASK
        + "      env:\n        - name: URL\n          valueFrom:\n"
        + "            secretKeyRef: {name: kubedag-git, key: token}\n"
    )
    [problem] = refused(text)
    assert (problem.line, problem.col) == (12, 34)
    assert problem.field == "spec.tasks[0].env[0].valueFrom.secretKeyRef.name"


def test_secret_and_projected_volumes_outside_the_allow_list_are_refused() -> None:
    text = (
        TASK
        + "      podOverrides:\n        volumes:\n"
        + "          - {name: a, secret: {secretName: kubedag-database}}\n"
        + "          - name: b\n            projected:\n              sources:\n"
        + "                - secret: {name: kubedag-git}\n"
        + "                - secret: {name: warehouse}\n"
    )
    problems = refused(text)
    assert [(p.line, p.field) for p in problems] == [
        (11, "spec.tasks[0].podOverrides.volumes[0].secret.secretName"),
        (15, "spec.tasks[0].podOverrides.volumes[1].projected.sources[0].secret.name"),
    ]


def test_defaults_are_checked_where_they_are_written() -> None:
    text = (
        HEADER
        + "  defaults:\n    envFrom: [{secretRef: {name: kubedag-database}}]\n"
        + "  tasks:\n    - name: a\n      image: x\n"
    )
    [problem] = refused(text)
    assert (problem.line, problem.field) == (7, "spec.defaults.envFrom[0].secretRef.name")


def test_allowed_secrets_and_config_maps_pass() -> None:
    text = (
        TASK
        + "      envFrom:\n        - secretRef: {name: warehouse}\n"
        + "        - configMapRef: {name: kubedag-database}\n"
    )
    assert refused(text) == []


def test_without_a_policy_nothing_is_refused() -> None:
    text = TASK + "      podOverrides:\n        serviceAccountName: kubedag-controller\n"
    assert problems_of(text) == []


def test_a_refused_dag_is_not_loaded(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", TASK + "      envFrom: [{secretRef: {name: db}}]\n")
    report = validate_paths([tmp_path], root=tmp_path, policy=POLICY)
    assert report.dags == ()
    assert [p.path for p in report.problems] == ["bad.yaml"]


@given(names=st.lists(SECRET_NAMES, min_size=1, max_size=6), allowed=st.sets(SECRET_NAMES))
def test_exactly_the_secrets_outside_the_allow_list_are_refused(
    names: list[str], allowed: set[str]
) -> None:
    policy = PodPolicy(allowed_secrets=frozenset(allowed))
    env_from = [{"secretRef": {"name": name}} for name in names]
    violations = task_violations(policy, env=[], env_from=env_from, pod_overrides={})
    assert [v.where for v in violations] == [
        ("envFrom", index, "secretRef", "name")
        for index, name in enumerate(names)
        if name not in allowed
    ]


def test_kubedag_validate_applies_the_policy_of_a_config_file(tmp_path: Path) -> None:
    dag = write(tmp_path, "dag.yaml", TASK + "      envFrom: [{secretRef: {name: db}}]\n")
    config = write(tmp_path, "config.yaml", "executor:\n  allowedSecrets: [warehouse]\n")
    without = subprocess.run(
        [*VALIDATE, str(dag)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert without.returncode == 0, without.stdout + without.stderr
    with_policy = subprocess.run(
        [*VALIDATE, "--format=json", "--config", str(config), str(dag)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert with_policy.returncode == 1
    [problem] = json.loads(with_policy.stdout)["problems"]
    assert (problem["line"], problem["field"]) == (9, "spec.tasks[0].envFrom[0].secretRef.name")
