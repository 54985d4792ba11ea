"""Build DAG files for validator tests: a valid base document, and a way to check one file.

Each rule's test writes a small YAML text by hand, so the line and column it asserts
are visible right in the test.
"""

from __future__ import annotations

from pathlib import Path

from controller.spec.problems import Problem
from controller.spec.validate import ValidationReport, check_file, validate_paths

HEADER = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata:
  name: demo
spec:
"""
"""Five lines: a spec that follows starts on line 6."""


def problems_of(text: str, *, path: str = "dag.yaml") -> list[Problem]:
    """The problems of one DAG file's text, in reading order."""
    return sorted(check_file(text.encode("utf-8"), path=path).problems)


def only_problem(text: str) -> Problem:
    found = problems_of(text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def where(problem: Problem) -> tuple[int, int]:
    return problem.line, problem.col


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def validate_dir(directory: Path) -> ValidationReport:
    return validate_paths([directory], root=directory)
