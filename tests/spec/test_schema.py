"""The schema is a usable contract: complete, documented, and its errors are readable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from controller.spec.schema import schema, schema_text
from tests.spec.support import HEADER, only_problem, problems_of, where

ROOT = Path(__file__).resolve().parents[2]
TASKS = "  tasks:\n    - {name: a, image: busybox}\n"


CONDITIONS = frozenset({"if", "then", "else", "not"})
"""Conditional rules only refine fields declared (and described) beside them."""


def _properties(node: Any, trail: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{trail}.{name}", sub
        for key, value in node.items():
            if key not in CONDITIONS:
                yield from _properties(value, f"{trail}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _properties(value, f"{trail}[{index}]")


def _resolved(sub: dict[str, Any]) -> dict[str, Any]:
    reference = sub.get("$ref")
    if isinstance(reference, str):
        return {**schema()["$defs"][reference.removeprefix("#/$defs/")], **sub}
    return sub


def test_schema_is_valid_draft_2020_12_with_an_id() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema()["$id"].endswith("/dag.schema.json")


def test_every_property_has_a_description() -> None:
    missing = [trail for trail, sub in _properties(schema()) if "description" not in _resolved(sub)]
    assert missing == []


def test_schema_examples_are_valid_dags() -> None:
    validator = jsonschema.Draft202012Validator(schema())
    for example in schema()["examples"]:
        validator.validate(example)


def test_editors_find_the_schema_under_schemas() -> None:
    link = ROOT / "schemas" / "dag.schema.json"
    assert link.is_symlink()
    assert not Path(link.readlink()).is_absolute()
    assert json.loads(link.read_text()) == json.loads(schema_text())


def test_unknown_field_is_reported_at_its_key_with_a_suggestion() -> None:
    text = HEADER + "  tasks:\n    - name: a\n      imgae: busybox\n"
    problems = problems_of(text)
    unknown = [p for p in problems if "unknown field" in p.message]
    assert len(unknown) == 1
    assert where(unknown[0]) == (8, 7)
    assert "did you mean 'image'?" in unknown[0].message
    assert unknown[0].field == "spec.tasks[0].imgae"


def test_unknown_top_level_field_is_reported() -> None:
    problem = only_problem(HEADER + TASKS + "status: {}\n")
    assert where(problem) == (8, 1)


def test_missing_required_field_is_reported_at_its_parent_key() -> None:
    problem = only_problem("apiVersion: kubedag.io/v1\nkind: DAG\nmetadata: {}\nspec:\n" + TASKS)
    assert where(problem) == (3, 1)
    assert problem.message == "missing required field 'name'"
    assert problem.field == "metadata.name"


def test_every_missing_required_field_is_named() -> None:
    problems = problems_of("kind: DAG\n")
    assert [(where(p), p.message) for p in problems] == [
        ((1, 1), "missing required field 'apiVersion'"),
        ((1, 1), "missing required field 'metadata'"),
        ((1, 1), "missing required field 'spec'"),
    ]


def test_wrong_kind_of_value_names_both_types() -> None:
    problem = only_problem(HEADER + "  maxActiveRuns: many\n" + TASKS)
    assert where(problem) == (6, 18)
    assert problem.message == "must be integer, not string"


def test_unquoted_number_in_a_command_is_reported() -> None:
    problem = only_problem(HEADER + "  tasks:\n    - {name: a, image: x, command: [sleep, 5]}\n")
    assert where(problem) == (7, 44)
    assert "quote numbers" in problem.message


def test_wrong_api_version_is_reported() -> None:
    problem = only_problem(HEADER.replace("kubedag.io/v1", "kubedag.io/v2") + TASKS)
    assert where(problem) == (1, 13)
    assert "must be 'kubedag.io/v1'" in problem.message


def test_invalid_trigger_rule_lists_the_allowed_ones() -> None:
    text = HEADER + "  tasks:\n    - {name: a, image: x, triggerRule: always}\n"
    problem = only_problem(text)
    assert where(problem) == (7, 40)
    assert "'allDone'" in problem.message


@pytest.mark.parametrize("name", ["Daily", "-daily", "daily_sales", "a" * 64])
def test_dag_name_must_be_a_dns_label(name: str) -> None:
    problem = only_problem(HEADER.replace("name: demo", f"name: {name}") + TASKS)
    assert where(problem) == (4, 9)
    assert "DNS-1123 label" in problem.message


def test_task_name_must_be_a_dns_label() -> None:
    problem = only_problem(HEADER + "  tasks:\n    - {name: Extract_Data, image: x}\n")
    assert where(problem) == (7, 14)
    assert "DNS-1123 label" in problem.message


def test_malformed_duration_is_reported() -> None:
    problem = only_problem(HEADER + "  tasks:\n    - {name: a, image: x, timeout: 10x}\n")
    assert where(problem) == (7, 36)
    assert "must be a duration" in problem.message


def test_param_name_must_be_template_friendly() -> None:
    text = HEADER + "  params:\n    my.param: {type: string}\n" + TASKS
    problem = only_problem(text)
    assert where(problem) == (7, 5)
