"""withItems from an upstream result: what the validator accepts, and where it reports."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.spec.validate import check_file
from tests.spec.support import HEADER, only_problem, problems_of, where

LIST = "    - {name: list, image: x, result: {format: json}}\n"


def dag(*tasks: str, defaults: str = "") -> str:
    return HEADER + defaults + "  tasks:\n" + LIST + "".join(tasks)


def test_a_json_upstream_in_depends_on_is_accepted_and_resolved() -> None:
    text = dag(
        '    - {name: each, image: x, dependsOn: [list], withItems: "{{ tasks.list.result }}",'
        ' command: [run, "{{ item }}", "{{ item.table }}"]}\n'
    )
    report = check_file(text.encode(), path="dag.yaml")
    assert report.problems == []
    assert report.loaded is not None
    each = report.loaded.dag.task("each")
    assert (each.items_from, each.with_items, each.fans_out) == ("list", None, True)


def test_result_format_json_may_come_from_defaults() -> None:
    text = HEADER + (
        "  defaults: {result: {format: json}}\n"
        "  tasks:\n"
        "    - {name: list, image: x}\n"
        '    - {name: each, image: x, dependsOn: [list], withItems: "{{tasks.list.result}}"}\n'
    )
    assert problems_of(text) == []


@pytest.mark.parametrize(
    ("each", "message"),
    [
        (
            '    - {name: each, image: x, withItems: "{{ tasks.list.result }}"}\n',
            "withItems reads the result of 'list', which is not in dependsOn: add 'list'",
        ),
        (
            "    - {name: each, image: x, dependsOn: [list],"
            ' withItems: "{{ tasks.lst.result }}"}\n',
            "withItems reads the result of 'lst', which is not a task",
        ),
        (
            "    - {name: each, image: x, dependsOn: [list],"
            ' withItems: "{{ tasks.list.result }}s"}\n',
            'withItems must be a list of items or exactly "{{ tasks.NAME.result }}"',
        ),
        (
            '    - {name: each, image: x, dependsOn: [list], withItems: "{{ params.tables }}"}\n',
            'withItems must be a list of items or exactly "{{ tasks.NAME.result }}"',
        ),
        (
            '    - {name: each, image: x, withItems: "{{ tasks.each.result }}"}\n',
            "task 'each' cannot fan out over its own result",
        ),
    ],
)
def test_a_bad_source_is_reported_at_with_items(each: str, message: str) -> None:
    problem = only_problem(dag(each))
    assert where(problem) == (8, each.index('"') + 1)  # at the withItems value
    assert message in problem.message
    assert problem.field == "spec.tasks[1].withItems"


def test_a_text_result_cannot_be_fanned_out_over() -> None:
    text = HEADER + (
        "  tasks:\n"
        "    - {name: list, image: x}\n"
        '    - {name: each, image: x, dependsOn: [list], withItems: "{{ tasks.list.result }}"}\n'
    )
    problem = only_problem(text)
    assert "which must declare result: {format: json}" in problem.message


def test_a_template_in_a_list_of_items_is_refused_instead_of_staying_text() -> None:
    text = dag(
        '    - {name: each, image: x, dependsOn: [list], withItems: ["{{ tasks.list.result }}"]}\n'
    )
    problem = only_problem(text)
    assert where(problem) == (8, text.splitlines()[7].index('"') + 1)
    assert problem.field == "spec.tasks[1].withItems[0]"
    assert 'write withItems: "{{ tasks.NAME.result }}"' in problem.message


def test_show_says_a_dynamic_fan_out_has_one_instance_per_element(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = dag(
        '    - {name: each, image: x, dependsOn: [list], withItems: "{{ tasks.list.result }}"}\n'
    )
    path = tmp_path / "d.yaml"
    path.write_text(text)
    assert main(["show", str(path)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["fanOut"]["each"] == ["(one instance per element of tasks.list.result)"]
    assert shown["tasks"][1]["itemsFrom"] == "list"
