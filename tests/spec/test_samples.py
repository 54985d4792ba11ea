"""The sample DAGs are valid, say how their runs end, and ship the scripts they run."""

from __future__ import annotations

import re
from pathlib import Path

from controller.spec.validate import validate_paths

SAMPLES = Path(__file__).resolve().parents[2] / "sample-dags"


def test_sample_dags_validate() -> None:
    report = validate_paths([SAMPLES], root=SAMPLES)
    assert report.ok, "\n".join(map(str, report.problems))
    assert len(report.dags) >= 5


def test_each_sample_states_its_expected_run_state_on_its_first_line() -> None:
    for path in sorted(SAMPLES.glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert re.fullmatch(r"# expected: (succeeded|failed)", first), path.name


def test_samples_cover_the_language() -> None:
    dags = {loaded.dag.name: loaded.dag for loaded in validate_paths([SAMPLES]).dags}
    tasks = [task for dag in dags.values() for task in dag.tasks]
    assert any(task.with_items for task in tasks)
    assert any(task.retries.limit > 0 and task.resources for task in tasks)
    assert any(dag.schedule == "@hourly" for dag in dags.values())
    assert any(dag.schedule is None and dag.params for dag in dags.values())
    assert any(task.trigger_rule.value == "allDone" for task in tasks)


def test_every_script_a_sample_runs_is_in_the_repository() -> None:
    for loaded in validate_paths([SAMPLES]).dags:
        for task in loaded.dag.tasks:
            assert task.image == "python:3.12-slim"
            assert task.command[0] == "python3"
            assert (SAMPLES / task.command[1]).is_file(), (loaded.dag.name, task.name)
