"""Pod fields the Kubernetes API server would refuse are reported where they are written.

Each rule is Kubernetes' own (pkg/apis/core/validation): without it the file would
validate, and the pod would be refused with 422 only when a run creates it.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.spec.support import HEADER, only_problem, problems_of, where

TASK = HEADER + "  tasks:\n    - name: a\n      image: x\n"
"""A task whose fields start on line 9, indented by 6."""


def tolerations(*entries: str) -> str:
    return (
        TASK
        + "      podOverrides:\n        tolerations:\n"
        + "".join(f"          - {entry}\n" for entry in entries)
    )


def test_exists_toleration_with_a_value_is_reported_at_the_value() -> None:
    problem = only_problem(tolerations("{key: gpu, operator: Exists, value: 'true'}"))
    assert where(problem) == (11, 49)
    assert problem.field == "spec.tasks[0].podOverrides.tolerations[0].value"
    assert problem.message.startswith("'true' must be empty with operator Exists")


def test_exists_toleration_with_an_empty_value_is_valid() -> None:
    assert problems_of(tolerations("{key: gpu, operator: Exists, value: ''}")) == []


def test_toleration_without_a_key_must_use_exists() -> None:
    problem = only_problem(tolerations("{operator: Equal, value: x}"))
    assert where(problem) == (11, 24)
    assert problem.field == "spec.tasks[0].podOverrides.tolerations[0].operator"
    assert "without one, a toleration must have operator Exists" in problem.message


def test_toleration_without_a_key_or_operator_is_reported_at_the_toleration() -> None:
    problem = only_problem(tolerations("{value: x}"))
    assert where(problem) == (11, 13)
    assert problem.field == "spec.tasks[0].podOverrides.tolerations[0].operator"
    assert problem.message.startswith("missing required field 'operator': without a key")


def test_toleration_with_neither_key_nor_value_tolerating_everything_is_valid() -> None:
    assert problems_of(tolerations("{operator: Exists}")) == []


def test_toleration_seconds_need_effect_no_execute() -> None:
    problem = only_problem(tolerations("{key: gpu, effect: NoSchedule, tolerationSeconds: 30}"))
    assert where(problem) == (11, 32)
    assert problem.field == "spec.tasks[0].podOverrides.tolerations[0].effect"
    assert "must be NoExecute when tolerationSeconds is set" in problem.message


def test_toleration_seconds_without_an_effect_are_reported() -> None:
    problem = only_problem(tolerations("{key: gpu, tolerationSeconds: 30}"))
    assert where(problem) == (11, 13)
    assert problem.message.startswith("missing required field 'effect'")


def test_unknown_effect_with_toleration_seconds_is_reported_once() -> None:
    problem = only_problem(tolerations("{key: gpu, effect: Soon, tolerationSeconds: 30}"))
    assert where(problem) == (11, 32)
    assert "'Soon' is not one of" in problem.message


def test_toleration_key_must_be_a_label_key() -> None:
    problem = only_problem(tolerations("{key: 'gpu type', operator: Exists}"))
    assert where(problem) == (11, 19)
    assert problem.message.startswith("toleration key 'gpu type'")


def test_equal_toleration_value_must_be_a_label_value() -> None:
    problem = only_problem(tolerations("{key: gpu, value: 'a100 or h100'}"))
    assert where(problem) == (11, 31)
    assert "label value 'a100 or h100'" in problem.message


def test_toleration_rules_apply_to_the_defaults_too() -> None:
    text = HEADER + (
        "  defaults:\n    image: x\n    podOverrides:\n"
        "      tolerations: [{key: spot, operator: Exists, value: 'yes'}]\n"
        "  tasks:\n    - {name: a}\n"
    )
    problem = only_problem(text)
    assert where(problem) == (9, 58)
    assert problem.field == "spec.defaults.podOverrides.tolerations[0].value"


def mounts(*entries: str) -> str:
    return (
        TASK
        + "      podOverrides:\n"
        + "        volumes: [{name: a, emptyDir: {}}, {name: b, emptyDir: {}}]\n"
        + "        volumeMounts:\n"
        + "".join(f"          - {entry}\n" for entry in entries)
    )


def test_sub_path_and_sub_path_expr_exclude_each_other() -> None:
    problem = only_problem(mounts("{name: a, mountPath: /d, subPath: x, subPathExpr: $(POD)}"))
    assert where(problem) == (12, 63)
    assert problem.field == "spec.tasks[0].podOverrides.volumeMounts[0].subPathExpr"
    assert "cannot be used together with subPath" in problem.message


@pytest.mark.parametrize(
    ("entry", "col", "message"),
    [
        ("{name: a, mountPath: /d, subPath: /etc}", 47, "must be a relative path"),
        ("{name: a, mountPath: /d, subPath: logs/../..}", 47, "must not contain '..'"),
        ("{name: a, mountPath: /d, subPathExpr: ../$(POD)}", 51, "must not contain '..'"),
    ],
)
def test_sub_paths_stay_inside_the_volume(entry: str, col: int, message: str) -> None:
    problem = only_problem(mounts(entry))
    assert where(problem) == (12, col)
    assert message in problem.message


def test_two_volumes_mounted_at_one_path_are_reported_at_the_second() -> None:
    found = only_problem(mounts("{name: a, mountPath: /data}", "{name: b, mountPath: /data}"))
    assert where(found) == (13, 34)
    assert found.field == "spec.tasks[0].podOverrides.volumeMounts[1].mountPath"
    assert "already where volume 'a' is mounted" in found.message


def test_env_value_and_value_from_exclude_each_other() -> None:
    text = TASK + "      env: [{name: A, value: x, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n"
    problem = only_problem(text)
    assert where(problem) == (9, 30)
    assert problem.field == "spec.tasks[0].env[0].value"
    assert "must be empty when valueFrom is set" in problem.message


@pytest.mark.parametrize(
    "value_from",
    ["{}", "{secretKeyRef: {name: s, key: k}, fieldRef: {fieldPath: metadata.name}}"],
)
def test_value_from_names_exactly_one_source(value_from: str) -> None:
    problem = only_problem(TASK + f"      env: [{{name: A, valueFrom: {value_from}}}]\n")
    assert where(problem) == (9, 34)
    assert problem.field == "spec.tasks[0].env[0].valueFrom"
    assert problem.message.startswith("valueFrom must name exactly one of")


@pytest.mark.parametrize(
    "entry", ["{prefix: X_}", "{configMapRef: {name: c}, secretRef: {name: s}}"]
)
def test_env_from_imports_exactly_one_source(entry: str) -> None:
    problem = only_problem(TASK + f"      envFrom: [{entry}]\n")
    assert where(problem) == (9, 17)
    assert problem.field == "spec.tasks[0].envFrom[0]"
    assert "exactly one of configMapRef or secretRef" in problem.message


OPTIONAL = st.none()
"""None in a drawn toleration means the field is left out."""


def _kubernetes_accepts(toleration: dict[str, object]) -> bool:
    """Kubernetes' ValidateTolerations, for the values drawn below."""
    key, operator = toleration.get("key", ""), toleration.get("operator", "")
    value, effect = toleration.get("value", ""), toleration.get("effect", "")
    if key == "gpu type":  # not a label key
        return False
    if key == "" and operator != "Exists":
        return False
    if "tolerationSeconds" in toleration and effect != "NoExecute":
        return False
    if operator == "Exists":
        return value == ""
    return value != "a100 or h100"  # not a label value


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "key": OPTIONAL | st.sampled_from(["", "gpu", "nvidia.com/gpu", "gpu type"]),
            "operator": OPTIONAL | st.sampled_from(["Equal", "Exists"]),
            "value": OPTIONAL | st.sampled_from(["", "a100", "a100 or h100"]),
            "effect": OPTIONAL
            | st.sampled_from(["", "NoSchedule", "PreferNoSchedule", "NoExecute"]),
            "tolerationSeconds": OPTIONAL | st.sampled_from([0, 300]),
        }
    )
)
def test_a_toleration_is_valid_exactly_when_kubernetes_accepts_it(
    drawn: dict[str, object],
) -> None:
    toleration = {field: value for field, value in drawn.items() if value is not None}
    text = tolerations(json.dumps(toleration))
    assert (problems_of(text) == []) == _kubernetes_accepts(toleration), problems_of(text)


def test_pod_label_problems_are_reported_at_the_label() -> None:
    text = TASK + "      podOverrides:\n        labels: {'bad key!': x, team: 'a b'}\n"
    problems = problems_of(text)
    assert [(where(p), p.field) for p in problems] == [
        ((10, 18), "spec.tasks[0].podOverrides.labels.bad key!"),
        ((10, 39), "spec.tasks[0].podOverrides.labels.team"),
    ]
