"""`kubedag trigger`, `runs` and `tasks` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from controller.base.states import DagRunState, RunType
from controller.cli import main
from controller.spec.model import Dag, Param, ParamType, dag_to_dict
from controller.store import Store
from tests.engine.support import task
from tests.runtime.inprocess import Outcome
from tests.runtime.support import LOGICAL_DATE, REVISION, engine_on, store_dag

KUBEDAG = (sys.executable, "-m", "controller")

PARAMS = Dag(
    name="report",
    tasks=(task("build"), task("send", "build")),
    params=(
        Param("days", ParamType.INTEGER, default=7),
        Param("region", ParamType.STRING, default="eu", enum=("eu", "us")),
    ),
)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_trigger_queues_a_manual_run_with_typed_params(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PARAMS)
    code, out, _ = cli(
        capsys,
        "trigger",
        "report",
        "--param",
        "days=3",
        "--database-url",
        database_url,
        "--output",
        "json",
    )
    assert code == 0
    shown = json.loads(out)
    assert shown["params"] == {"days": 3, "region": "eu"}
    assert shown["type"] == "manual"
    with store.transaction() as uow:
        run = uow.get_run(shown["id"])
    assert run is not None
    assert (run.state, run.run_type) == (DagRunState.QUEUED, RunType.MANUAL)


def test_trigger_names_the_declared_type_of_a_bad_param(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PARAMS)
    code, _, err = cli(
        capsys,
        "trigger",
        "report",
        "--param",
        "days=soon",
        "--param",
        "region=mars",
        "--database-url",
        database_url,
    )
    assert code == 2
    assert "'days' is an integer" in err
    assert "'region' must be one of" in err
    with store.transaction() as uow:
        assert uow.list_runs() == []


def test_trigger_refuses_an_unknown_dag_and_lists_the_known_ones(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PARAMS)
    code, _, err = cli(capsys, "trigger", "reprot", "--database-url", database_url)
    assert code == 2
    assert "unknown DAG 'reprot' (known: report)" in err


def test_an_unmigrated_database_asks_for_kubedag_db_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    for argv in (("trigger", "report"), ("runs",), ("tasks", "1")):
        code, _, err = cli(capsys, *argv, "--database-url", url)
        assert code == 2
        assert "kubedag db upgrade" in err


def test_runs_and_tasks_show_a_finished_run_as_tables_and_json(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PARAMS)
    code, out, _ = cli(
        capsys, "trigger", "report", "--database-url", database_url, "--output", "json"
    )
    run_id = json.loads(out)["id"]
    with engine_on(store, lambda order: Outcome.succeeded(f"{order.task.name} done")) as engine:
        engine.wake([run_id])
        engine.run_until_idle(timeout=30)

    code, out, _ = cli(capsys, "runs", "report", "--database-url", database_url)
    assert code == 0
    header, line = out.splitlines()
    assert header.split()[:5] == ["RUN", "DAG", "LOGICAL", "DATE", "TYPE"]
    assert line.split()[:2] == [str(run_id), "report"]
    assert "succeeded" in line

    code, out, _ = cli(capsys, "runs", "--state", "failed", "--database-url", database_url)
    assert (code, out.strip()) == (0, "(none)")

    code, out, _ = cli(capsys, "tasks", str(run_id), "--database-url", database_url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith(": succeeded")
    assert [line.split()[0] for line in lines[2:]] == ["build", "send"]
    assert "result send done" in lines[3]

    code, out, _ = cli(
        capsys, "tasks", str(run_id), "--output", "json", "--database-url", database_url
    )
    tries = json.loads(out)
    assert [(t["task"], t["try"], t["state"], t["result"]) for t in tries] == [
        ("build", 1, "succeeded", "build done"),
        ("send", 1, "succeeded", "send done"),
    ]
    assert all(t["pod"].startswith("report-") for t in tries)


def test_tasks_of_an_unknown_run_says_how_to_find_runs(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "tasks", "999", "--database-url", database_url)
    assert code == 2
    assert "kubedag runs" in err


def test_runs_reads_the_database_named_in_the_config_file_as_status_does(
    store: Store, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, PARAMS)
    config = tmp_path / "config.yaml"
    config.write_text(f"databaseUrl: {database_url}\n")
    assert cli(capsys, "trigger", "report", "--config", str(config))[0] == 0
    code, out, err = cli(capsys, "runs", "--config", str(config), "--output", "json")
    assert code == 0, err
    assert [run["dag"] for run in json.loads(out)] == ["report"]
    code, out, err = cli(capsys, "status", "--config", str(config), "--output", "json")
    assert code == 0, err
    assert "report" in out


def test_a_reader_that_stops_early_ends_the_command_quietly_with_141(
    store: Store, database_url: str
) -> None:
    store_dag(store, PARAMS)
    with store.transaction() as uow:
        for day in range(400):
            uow.create_run(
                dag_name="report",
                logical_date=LOGICAL_DATE + timedelta(days=day),
                run_type=RunType.SCHEDULED,
                revision=REVISION,
                spec=dag_to_dict(PARAMS),
                params={},
            )
    argv = [*KUBEDAG, "runs", "--database-url", database_url, "--limit", "400", "--output", "json"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        # More than a pipe holds: the command is still writing when the reader leaves.
        assert process.stdout.read(10) == b"[\n  {\n    "
        process.stdout.close()
        error = process.stderr.read().decode()
        assert process.wait(timeout=60) == 141
    assert error == ""
