"""YAML pitfalls are errors with a position, never surprises."""

from __future__ import annotations

from controller.spec.loader import MAX_ALIAS_USES, MAX_FILE_BYTES, load_document
from tests.spec.support import HEADER, only_problem, problems_of, where

TASKS = "  tasks:\n    - {name: a, image: busybox}\n"


def test_duplicate_key_is_reported_at_the_second_key() -> None:
    text = HEADER + "  schedule: '@daily'\n  schedule: '@hourly'\n" + TASKS
    problem = only_problem(text)
    assert where(problem) == (7, 3)
    assert "duplicate key 'schedule' (first at line 6, column 3)" in problem.message


def test_duplicate_key_inside_a_task_is_reported() -> None:
    text = HEADER + "  tasks:\n    - name: a\n      image: x\n      image: y\n"
    assert where(only_problem(text)) == (9, 7)


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    problems = problems_of("kind: DAG\n" + "\n".join(lines) + "\n")
    assert len(problems) == 1
    assert "alias" in problems[0].message
    assert problems[0].line <= 4


def test_many_alias_uses_are_refused() -> None:
    uses = "\n".join(f"k{i}: *base" for i in range(MAX_ALIAS_USES + 1))
    problem = only_problem("kind: DAG\nbase: &base {x: 1}\n" + uses + "\n")
    assert f"more than {MAX_ALIAS_USES} alias uses" in problem.message


def test_recursive_alias_is_refused() -> None:
    problem = only_problem("kind: DAG\nloop: &loop\n  again: *loop\n")
    assert "recursive" in problem.message
    assert where(problem) == (2, 7)  # the anchor of the node the alias re-enters


def test_file_over_the_size_limit_is_refused() -> None:
    data = b"kind: DAG\n" + b"# padding\n" * (MAX_FILE_BYTES // 10)
    document, problems = load_document(data, path="big.yaml")
    assert document is None
    assert "more than the limit" in problems[0].message


def test_non_mapping_document_is_refused() -> None:
    problem = only_problem("- kind: DAG\n")
    assert where(problem) == (1, 1)
    assert "must be a mapping" in problem.message


def test_second_document_is_refused_at_its_start() -> None:
    text = HEADER + TASKS + "---\nkind: DAG\n"
    problem = only_problem(text)
    assert where(problem) == (9, 1)
    assert "more than one YAML document" in problem.message


def test_non_utf8_bytes_are_reported_at_their_line_and_column() -> None:
    data = b"kind: DAG\nmetadata:\n  name: caf\xe9\n"
    document, problems = load_document(data, path="latin1.yaml")
    assert document is None
    assert (problems[0].line, problems[0].col) == (3, 12)
    assert "not UTF-8" in problems[0].message


def test_empty_file_is_refused() -> None:
    assert "empty file" in only_problem("# kind: DAG\n").message


def test_syntax_error_is_reported_where_the_parser_stopped() -> None:
    problem = only_problem("kind: DAG\nmetadata: {name: x\n")
    assert problem.message.startswith("YAML syntax error")
    assert problem.line == 3


def test_unsupported_tag_is_refused() -> None:
    text = HEADER + "  schedule: !!python/name:os.system '@daily'\n" + TASKS
    problem = problems_of(text)[0]
    assert where(problem) == (6, 13)
    assert "unsupported YAML tag" in problem.message


def test_boolean_looking_key_must_be_quoted() -> None:
    text = (
        HEADER
        + TASKS
        + "    - name: b\n      image: x\n      podOverrides:\n"
        + ("        nodeSelector: {on: 'x'}\n")
    )
    problem = problems_of(text)[0]
    assert where(problem) == (11, 24)
    assert "quote it" in problem.message


def test_merge_keys_work_and_explicit_keys_win() -> None:
    text = "kind: DAG\nbase: &base {image: one, command: [a]}\ntask:\n  <<: *base\n  image: two\n"
    document, problems = load_document(text.encode(), path="m.yaml")
    assert problems == []
    assert document is not None
    assert document.value["task"] == {"image": "two", "command": ["a"]}
    assert (document.at(("task", "command")).line, document.at(("task", "image")).line) == (2, 5)


def test_timestamps_stay_the_text_they_were_written_as() -> None:
    document, _ = load_document(b"kind: DAG\nstart: 2026-01-01\n", path="t.yaml")
    assert document is not None
    assert document.value["start"] == "2026-01-01"


def test_deep_nesting_is_refused() -> None:
    problem = only_problem("kind: DAG\nx: " + "[" * 100 + "]" * 100 + "\n")
    assert "nesting deeper" in problem.message


def test_merging_a_mapping_with_an_unsupported_tag_reports_the_tag() -> None:
    text = HEADER + "  tasks:\n    - <<: !custom {command: [x]}\n      name: a\n      image: x\n"
    problem = only_problem(text)
    assert where(problem) == (7, 11)
    assert "unsupported YAML tag '!custom'" in problem.message


def test_an_alias_without_its_anchor_is_a_syntax_error() -> None:
    # Why a text without '&' needs no alias bookkeeping: every alias needs an anchor.
    problem = only_problem("kind: DAG\nspec: *shared\n")
    assert where(problem) == (2, 7)
    assert problem.message == "YAML syntax error: found undefined alias"


def test_a_merge_key_without_anchors_still_merges_and_refuses_duplicates() -> None:
    text = "kind: DAG\ntask:\n  <<: {image: one, command: [a]}\n  image: two\n  image: three\n"
    document, problems = load_document(text.encode(), path="m.yaml")
    assert document is not None
    assert document.value["task"] == {"image": "two", "command": ["a"]}
    assert [(p.line, p.col) for p in problems] == [(5, 3)]
    assert problems[0].message.startswith("duplicate key 'image' (first at line 4, column 3)")
