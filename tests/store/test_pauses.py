"""An operator's pause stands until the DAG file changes its own spec.paused."""

from __future__ import annotations

import pytest

from controller.cli import main
from controller.operations.pausing import set_paused
from controller.store import DagRecord, Store
from tests.store.rows import SPEC


def sync(store: Store, *, paused: bool, revision: str = "b" * 40) -> DagRecord:
    with store.transaction() as uow:
        return uow.upsert_dag(
            name="daily-sales",
            path="dags/daily-sales.yaml",
            revision=revision,
            spec_hash="h",
            spec=SPEC,
            paused=paused,
        )


def test_a_pause_by_hand_outlives_commits_that_leave_spec_paused_alone(store: Store) -> None:
    sync(store, paused=False)
    set_paused(store, "daily-sales", paused=True, by="cli:alice@laptop")
    record = sync(store, paused=False, revision="c" * 40)
    assert (record.paused, record.paused_by) == (True, "cli:alice@laptop")


def test_a_commit_that_changes_spec_paused_overrides_the_hand(store: Store) -> None:
    sync(store, paused=False)
    set_paused(store, "daily-sales", paused=True, by="cli:alice@laptop")
    record = sync(store, paused=True)
    assert (record.paused, record.paused_by) == (True, "git")
    record = sync(store, paused=False)
    assert (record.paused, record.paused_by) == (False, None)


def test_unpausing_by_hand_a_dag_git_paused_lasts_until_git_changes_it(store: Store) -> None:
    assert sync(store, paused=True).paused_by == "git"
    set_paused(store, "daily-sales", paused=False, by="api")
    assert sync(store, paused=True, revision="d" * 40).paused is False


def test_pause_and_status_through_the_cli(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(store, paused=False)
    assert main(["pause", "daily-sales", "--database-url", database_url]) == 0
    assert capsys.readouterr().out == "DAG daily-sales paused\n"
    assert main(["status", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert "daily-sales  paused by cli:" in out
    assert main(["unpause", "nope", "--database-url", database_url]) == 2
    assert "no DAG named 'nope'" in capsys.readouterr().err
    with store.transaction() as uow:
        assert [event.kind for event in uow.list_events(dag_name="daily-sales")] == ["dag-paused"]
