"""Each semantic rule, shown by a broken file and the exact line and column it reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.spec.support import HEADER, only_problem, problems_of, validate_dir, where, write


def dag(spec: str) -> str:
    return HEADER + spec


def test_duplicate_task_names_are_reported_at_the_second() -> None:
    problem = only_problem(dag("  tasks:\n    - {name: a, image: x}\n    - {name: a, image: y}\n"))
    assert where(problem) == (8, 14)
    assert "duplicate task name 'a' (first at line 7, column 14)" in problem.message


def test_depends_on_an_unknown_task_is_reported_at_the_entry() -> None:
    problem = only_problem(
        dag("  tasks:\n    - {name: a, image: x}\n    - {name: b, image: x, dependsOn: [a, c]}\n")
    )
    assert where(problem) == (8, 42)
    assert "dependsOn names 'c', which is not a task (a, b)" in problem.message


def test_task_depending_on_itself_is_reported() -> None:
    problem = only_problem(dag("  tasks:\n    - {name: a, image: x, dependsOn: [a]}\n"))
    assert where(problem) == (7, 39)
    assert "depends on itself" in problem.message


def test_cycle_is_named_in_run_order_at_the_edge_that_closes_it() -> None:
    text = dag(
        "  tasks:\n"
        "    - name: a\n"
        "      image: x\n"
        "      dependsOn: [c]\n"
        "    - name: b\n"
        "      image: x\n"
        "      dependsOn: [a]\n"
        "    - name: c\n"
        "      image: x\n"
        "      dependsOn: [b]\n"
    )
    problem = only_problem(text)
    assert problem.message == "dependency cycle: a -> b -> c -> a"
    assert where(problem) == (9, 19)


def test_a_cycle_is_reported_once_however_it_is_entered() -> None:
    text = dag(
        "  tasks:\n"
        "    - {name: start, image: x}\n"
        "    - {name: p, image: x, dependsOn: [start, q]}\n"
        "    - {name: q, image: x, dependsOn: [p]}\n"
        "    - {name: r, image: x, dependsOn: [q, p]}\n"
    )
    problem = only_problem(text)
    assert problem.message == "dependency cycle: p -> q -> p"


def test_invalid_cron_is_reported_at_the_schedule() -> None:
    problem = only_problem(dag("  schedule: '61 * * * *'\n  tasks:\n    - {name: a, image: x}\n"))
    assert where(problem) == (6, 13)
    assert "invalid cron expression" in problem.message


def test_cron_with_six_fields_says_how_many_it_needs() -> None:
    problem = only_problem(dag("  schedule: '0 0 3 * * *'\n  tasks:\n    - {name: a, image: x}\n"))
    assert where(problem) == (6, 13)
    assert "has 6 fields; cron needs 5" in problem.message


def test_unknown_preset_is_reported() -> None:
    problem = only_problem(dag("  schedule: '@fortnightly'\n  tasks:\n    - {name: a, image: x}\n"))
    assert "unknown preset" in problem.message


def test_restricting_day_of_month_and_day_of_week_is_refused() -> None:
    problem = only_problem(dag("  schedule: 0 0 13 * 5\n  tasks:\n    - {name: a, image: x}\n"))
    assert where(problem) == (6, 13)
    assert "restrict only one" in problem.message


def test_unknown_timezone_is_reported() -> None:
    problem = only_problem(
        dag("  timezone: Europe/Atlantis\n  tasks:\n    - {name: a, image: x}\n")
    )
    assert where(problem) == (6, 13)
    assert "unknown time zone 'Europe/Atlantis'" in problem.message


def test_end_date_before_start_date_is_reported_at_the_end_date() -> None:
    text = dag(
        "  startDate: 2026-06-01\n  endDate: '2026-01-01T00:00:00Z'\n"
        "  tasks:\n    - {name: a, image: x}\n"
    )
    problem = only_problem(text)
    assert where(problem) == (7, 12)
    assert "is not after startDate" in problem.message


def test_unparsable_date_is_reported() -> None:
    problem = only_problem(dag("  startDate: next monday\n  tasks:\n    - {name: a, image: x}\n"))
    assert where(problem) == (6, 14)
    assert "is not a date-time" in problem.message


def test_zero_timeout_is_refused() -> None:
    problem = only_problem(dag("  tasks:\n    - {name: a, image: x, timeout: 0s}\n"))
    assert where(problem) == (7, 36)


@pytest.mark.parametrize("zero", ["0m0s", "0.0s", "0.0"])
def test_a_timeout_of_zero_written_any_way_is_refused(zero: str) -> None:
    problem = only_problem(dag(f"  tasks:\n    - {{name: a, image: x, timeout: {zero}}}\n"))
    assert "longer than 0s" in problem.message


def test_a_fractional_timeout_is_rounded_up_to_whole_seconds(tmp_path: Path) -> None:
    write(tmp_path, "d.yaml", dag("  tasks:\n    - {name: a, image: x, timeout: 1m0.5s}\n"))
    report = validate_dir(tmp_path)
    assert report.ok, report.problems
    assert report.dags[0].dag.tasks[0].timeout_seconds == 61


def test_template_reading_an_undeclared_param_points_into_the_string() -> None:
    text = dag(
        "  tasks:\n    - name: a\n      image: x\n      command: [echo, '{{ params.regoin }}']\n"
    )
    problem = only_problem(text)
    assert where(problem) == (9, 24)
    assert "no param 'regoin' is declared" in problem.message


def test_template_reading_a_task_that_is_not_upstream_is_reported() -> None:
    text = dag(
        "  tasks:\n"
        "    - {name: a, image: x}\n"
        "    - {name: b, image: x, args: ['--in={{ tasks.a.result }}']}\n"
    )
    problem = only_problem(text)
    assert where(problem) == (8, 40)
    assert "task 'a' is not upstream of 'b'" in problem.message
    assert "add 'a' to dependsOn" in problem.message


def test_template_may_read_a_transitive_upstream_result() -> None:
    text = dag(
        "  tasks:\n"
        "    - {name: a, image: x}\n"
        "    - {name: b, image: x, dependsOn: [a]}\n"
        "    - {name: c, image: x, dependsOn: [b], command: [echo, '{{ tasks.a.result }}']}\n"
    )
    assert problems_of(text) == []


def test_template_reading_an_unknown_task_is_reported() -> None:
    text = dag("  tasks:\n    - {name: a, image: x, command: ['{{ tasks.zz.result }}']}\n")
    problem = only_problem(text)
    assert where(problem) == (7, 38)
    assert "there is no task 'zz'" in problem.message


def test_item_outside_with_items_is_reported() -> None:
    text = dag(
        "  tasks:\n    - name: a\n      image: x\n      env: [{name: T, value: '{{ item }}'}]\n"
    )
    problem = only_problem(text)
    assert where(problem) == (9, 31)
    assert "only defined in a task with withItems" in problem.message


def test_item_key_must_exist_in_every_item() -> None:
    text = dag(
        "  tasks:\n    - name: a\n      image: x\n"
        "      withItems: [{table: orders}, {name: refunds}]\n"
        "      command: [load, '{{ item.table }}']\n"
    )
    problem = only_problem(text)
    assert where(problem) == (10, 24)
    assert "not every withItems entry is a mapping with key 'table'" in problem.message


def test_malformed_template_is_reported_at_its_tag() -> None:
    text = dag("  tasks:\n    - {name: a, image: x, command: ['x {{ params.a + 1 }}']}\n")
    problem = only_problem(text)
    assert where(problem) == (7, 40)
    assert "unknown template expression" in problem.message


def test_template_in_defaults_is_checked_for_each_task() -> None:
    text = dag(
        "  defaults:\n    image: x\n    args: ['{{ item }}']\n"
        "  tasks:\n    - {name: a, withItems: [1, 2]}\n    - {name: b}\n"
    )
    problem = only_problem(text)
    assert where(problem) == (8, 13)


def test_invalid_label_value_is_reported() -> None:
    text = HEADER.replace("name: demo", "name: demo\n  labels: {owner: 'data team'}")
    problem = only_problem(text + "  tasks:\n    - {name: a, image: x}\n")
    assert where(problem) == (5, 19)
    assert "label value 'data team'" in problem.message


def test_reserved_label_prefix_is_refused_on_pods() -> None:
    text = dag(
        "  tasks:\n    - name: a\n      image: x\n"
        "      podOverrides: {labels: {kubedag.io/run: mine}}\n"
    )
    problem = only_problem(text)
    assert where(problem) == (9, 31)
    assert "reserved" in problem.message


def test_invalid_quantity_is_reported() -> None:
    text = dag("  tasks:\n    - {name: a, image: x, resources: {limits: {memory: 1XB}}}\n")
    problem = only_problem(text)
    assert where(problem) == (7, 56)
    assert "is not a Kubernetes quantity" in problem.message


def test_request_larger_than_limit_is_reported_at_the_request() -> None:
    text = dag(
        "  defaults:\n    image: x\n    resources: {limits: {cpu: 500m}}\n"
        "  tasks:\n    - {name: a, resources: {requests: {cpu: '1'}}}\n"
    )
    problem = only_problem(text)
    assert where(problem) == (10, 45)
    assert "cpu request 1 is larger than its limit 500m" in problem.message


def test_task_without_image_is_reported() -> None:
    problem = only_problem(dag("  tasks:\n    - name: a\n      command: ['true']\n"))
    assert where(problem) == (7, 7)
    assert "has no image" in problem.message


def test_env_variable_set_twice_is_reported() -> None:
    text = dag(
        "  tasks:\n    - name: a\n      image: x\n"
        "      env: [{name: A, value: '1'}, {name: A, value: '2'}]\n"
    )
    problem = only_problem(text)
    assert where(problem) == (9, 43)


def test_volume_mount_of_an_undeclared_volume_is_reported() -> None:
    text = dag(
        "  tasks:\n    - name: a\n      image: x\n      podOverrides:\n"
        "        volumeMounts: [{name: cache, mountPath: /cache}]\n"
    )
    problem = only_problem(text)
    assert where(problem) == (10, 31)
    assert "volume 'cache'" in problem.message


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("{type: integer, default: seven}", "default 'seven' is not of type integer"),
        ("{type: string, default: eu, enum: [us, ap]}", "default 'eu' is not one of its enum"),
        ("{type: integer, enum: [1, two]}", "enum value 'two' is not of type integer"),
        ("{type: boolean, default: 1}", "default 1 is not of type boolean"),
    ],
)
def test_param_defaults_and_enums_must_match_the_type(param: str, message: str) -> None:
    text = dag(f"  params:\n    p: {param}\n  tasks:\n    - {{name: a, image: x}}\n")
    problem = only_problem(text)
    assert problem.line == 7
    assert message in problem.message


def test_required_param_without_default_on_a_scheduled_dag_is_refused() -> None:
    text = dag(
        "  schedule: '@daily'\n  params:\n    who: {type: string, required: true}\n"
        "  tasks:\n    - {name: a, image: x}\n"
    )
    problem = only_problem(text)
    assert where(problem) == (8, 35)
    assert "scheduled runs have no one to give it" in problem.message


def test_dag_names_must_be_unique_across_files_and_both_are_named(tmp_path: Path) -> None:
    body = "spec:\n  tasks:\n    - {name: a, image: x}\n"
    write(tmp_path, "one.yaml", HEADER.removesuffix("spec:\n") + body)
    write(tmp_path, "team/two.yaml", "# copy\n" + HEADER.removesuffix("spec:\n") + body)
    report = validate_dir(tmp_path)
    assert [str(p) for p in report.problems] == [
        "one.yaml:4:9: DAG name 'demo' is also used by team/two.yaml:5; names must be unique "
        "(metadata.name)",
        "team/two.yaml:5:9: DAG name 'demo' is also used by one.yaml:4; names must be unique "
        "(metadata.name)",
    ]
    assert report.dags == ()


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = dag(
        "  schedule: '99 * * * *'\n  timezone: Nowhere/City\n"
        "  tasks:\n    - {name: a, image: x, dependsOn: [ghost], imgae: y}\n"
    )
    assert [where(p) for p in problems_of(text)] == [(6, 13), (7, 13), (9, 39), (9, 47)]


def test_a_relative_working_dir_without_a_checkout_is_reported_at_the_working_dir() -> None:
    problem = only_problem(
        dag("  tasks:\n    - {name: a, image: x, checkout: false, workingDir: jobs}\n")
    )
    assert where(problem) == (7, 56)
    assert "relative to the checkout, but the task has checkout: false" in problem.message


def test_a_relative_working_dir_in_the_defaults_is_reported_there_for_a_task_without_checkout() -> (
    None
):
    problem = only_problem(
        dag(
            "  defaults: {workingDir: jobs}\n"
            "  tasks:\n    - {name: a, image: x, checkout: false}\n    - {name: b, image: x}\n"
        )
    )
    assert where(problem) == (6, 26)


def test_an_absolute_working_dir_without_a_checkout_is_fine() -> None:
    assert (
        problems_of(dag("  tasks:\n    - {name: a, image: x, checkout: false, workingDir: /app}\n"))
        == []
    )
