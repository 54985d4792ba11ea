"""The `kubedag validate`, `schema` and `show` commands as a user runs them."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.cli.validate import collector_paused
from tests.spec.support import HEADER, write

GOOD = HEADER + "  tasks:\n    - {name: a, image: x}\n    - {name: b, image: x, dependsOn: [a]}\n"
BAD = HEADER.replace("demo", "broken") + "  tasks:\n    - {name: a, image: x, dependsOn: [z]}\n"


def test_validate_reports_counts_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "good.yaml", GOOD)
    assert main(["validate", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "1 DAGs, 2 tasks checked\n"


def test_validate_prints_each_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.yaml", BAD)
    assert main(["validate", str(bad)]) == 1
    output = capsys.readouterr()
    assert output.out == (
        f"{bad}:7:39: dependsOn names 'z', which is not a task (a) (spec.tasks[0].dependsOn[0])\n"
    )
    assert output.err == "1 problem in 1 file; 0 DAGs, 0 tasks checked\n"


def test_validate_json_gives_the_same_as_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", BAD)
    assert main(["validate", "--format", "json", str(tmp_path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert (report["filesChecked"], report["dags"], report["tasks"]) == (2, 1, 2)
    assert report["problems"] == [
        {
            "path": str(bad),
            "line": 7,
            "col": 39,
            "field": "spec.tasks[0].dependsOn[0]",
            "message": "dependsOn names 'z', which is not a task (a)",
        }
    ]


def test_validate_defaults_to_the_current_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "dags/good.yaml", GOOD)
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 0
    assert "1 DAGs" in capsys.readouterr().out


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "kubedag DAG"


def test_show_prints_the_resolved_dag_fan_out_and_next_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = (
        "  schedule: '0 6 * * *'\n  timezone: America/New_York\n"
        "  defaults: {image: base:1, timeout: 10m}\n"
        "  tasks:\n    - {name: a, withItems: [x, y]}\n    - {name: b, dependsOn: [a]}\n"
    )
    path = write(tmp_path, "d.yaml", HEADER + spec)
    assert main(["show", str(path)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert [task["image"] for task in shown["tasks"]] == ["base:1", "base:1"]
    assert [task["timeoutSeconds"] for task in shown["tasks"]] == [600, 600]
    assert shown["fanOut"] == {"a": ["x", "y"], "b": ["(one instance)"]}
    assert len(shown["nextRuns"]) == 5
    assert all(run.startswith(("20", "21")) and "T06:00:00-0" in run for run in shown["nextRuns"])


def test_show_refuses_an_invalid_dag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.yaml", BAD)
    assert main(["show", str(path)]) == 1
    assert "dependsOn names 'z'" in capsys.readouterr().out


def test_show_says_when_a_file_is_not_a_dag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "deploy.yaml", "kind: Deployment\n")
    assert main(["show", str(path)]) == 1
    assert "not a DAG file" in capsys.readouterr().err


@pytest.mark.parametrize("enabled", [True, False])
def test_the_validate_command_pauses_the_collector_and_restores_it(enabled: bool) -> None:
    was_enabled = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was_enabled else gc.disable)()
