"""`kubedag status` through the real CLI entry point, on a real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.base.states import DagRunState, RunType
from controller.cli import main
from controller.process.dagsync import DagSync
from controller.store import Store
from tests.process.test_dagsync import BROKEN, dag_yaml

GOOD_SHA = "a" * 40
BROKEN_SHA = "b" * 40


def store_url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def populated(store: Store, tmp_path: Path) -> Store:
    """nightly (valid, then broken), manual (never run), gone (deleted), and a run."""
    dags = tmp_path / "repo"
    dags.mkdir()
    sync = DagSync(store)
    (dags / "nightly.yaml").write_text(dag_yaml("nightly"))
    (dags / "gone.yaml").write_text(dag_yaml("gone"))
    (dags / "manual.yaml").write_text(dag_yaml("manual").replace('  schedule: "0 3 * * *"\n', ""))
    sync.apply_revision(revision=GOOD_SHA, dags_dir=dags)
    with store.transaction() as uow:
        nightly = uow.get_dag("nightly")
        assert nightly is not None
        assert nightly.spec is not None
        uow.create_run(
            dag_name="nightly",
            logical_date=datetime(2026, 3, 1, 3, tzinfo=UTC),
            run_type=RunType.SCHEDULED,
            revision=GOOD_SHA,
            spec=nightly.spec,
            state=DagRunState.SUCCEEDED,
        )
    (dags / "nightly.yaml").write_text(BROKEN)
    (dags / "gone.yaml").unlink()
    sync.apply_revision(revision=BROKEN_SHA, dags_dir=dags)
    return store


def test_text_status_lists_states_runs_and_the_error_of_an_invalid_dag(
    populated: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--database-url", store_url(populated)]) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["DAG", "STATE", "SCHEDULE", "LAST", "RUN", "NEXT", "RUN"]
    manual = next(line for line in lines if line.startswith("manual "))
    assert manual.split()[:3] == ["manual", "active", "manual"]
    nightly = next(line for line in lines if line.startswith("nightly "))
    assert "invalid" in nightly
    assert "succeeded 2026-03-01T03:00:00+00:00" in nightly
    assert not any(line.startswith("gone ") for line in lines)
    assert f"nightly is invalid at {BROKEN_SHA[:12]}" in out
    assert f"version from {GOOD_SHA[:12]} keeps running" in out
    assert "nightly.yaml:" in out


def test_json_status_includes_deleted_dags_with_all(
    populated: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = datetime.now(UTC)
    code = main(["status", "--database-url", store_url(populated), "--all", "-o", "json"])

    assert code == 0
    by_name = {dag["name"]: dag for dag in json.loads(capsys.readouterr().out)["dags"]}
    assert by_name["gone"]["state"] == "deleted"
    assert by_name["gone"]["next_run"] is None
    assert by_name["manual"]["next_run"] is None
    nightly = by_name["nightly"]
    assert nightly["state"] == "invalid"
    assert nightly["running_revision"] == GOOD_SHA
    assert nightly["last_run_state"] == "succeeded"
    # The broken version does not stop the valid one's schedule.
    assert datetime.fromisoformat(nightly["next_run"]) > asked
    assert "missing" in nightly["error"]


def test_status_refuses_an_unmigrated_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"

    assert main(["status", "--database-url", url]) == 1
    assert "kubedag db upgrade" in capsys.readouterr().err
