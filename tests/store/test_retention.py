"""Retention deletes exactly the finished runs older than the cutoff, with all they own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.base.states import DagRunState, RunType, TaskState
from controller.base.tries import TryKey
from controller.cli import main
from controller.logstore import LogKey, LogStore
from controller.operations.retention import clean
from controller.store import DagRunRecord, NewTaskInstance, Store
from tests.store.rows import SPEC, add_dag

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def make_run(
    store: Store, day: int, state: DagRunState, *, finished_days_ago: int | None
) -> DagRunRecord:
    with store.transaction() as uow:
        run, _ = uow.create_run(
            dag_name="daily-sales",
            logical_date=datetime(2026, 1, day, tzinfo=UTC),
            run_type=RunType.SCHEDULED,
            revision="a" * 40,
            spec=SPEC,
        )
        finished = None if finished_days_ago is None else NOW - timedelta(days=finished_days_ago)
        uow.cas_run_state(run.id, expected=DagRunState.QUEUED, new=state, finished_at=finished)
        uow.add_task_instances(
            [
                NewTaskInstance(run_id=run.id, task_name=name, state=TaskState.SUCCEEDED)
                for name in ("extract", "load")
            ]
        )
        uow.append_event(kind="run-started", message="started", run_id=run.id, at=NOW)
    return run


def write_log(logs: LogStore, run: DagRunRecord) -> LogKey:
    key = LogKey(TryKey(run.id, "extract", 0, 1), "main")
    logs.write(key, f"log of run {run.id}\n")
    return key


def remaining(store: Store) -> list[int]:
    with store.transaction() as uow:
        return sorted(run.id for run in uow.list_runs(limit=100))


def test_clean_deletes_exactly_the_finished_runs_older_than_the_cutoff(
    store: Store, tmp_path: Path
) -> None:
    add_dag(store)
    logs = LogStore(str(tmp_path / "logs"))
    old_ok = make_run(store, 1, DagRunState.SUCCEEDED, finished_days_ago=100)
    old_failed = make_run(store, 2, DagRunState.FAILED, finished_days_ago=91)
    old_cancelled = make_run(store, 3, DagRunState.CANCELLED, finished_days_ago=200)
    recent = make_run(store, 4, DagRunState.SUCCEEDED, finished_days_ago=89)
    running = make_run(store, 5, DagRunState.RUNNING, finished_days_ago=None)
    queued = make_run(store, 6, DagRunState.QUEUED, finished_days_ago=None)
    keys = {run.id: write_log(logs, run) for run in (old_ok, old_failed, recent, running)}
    with store.transaction() as uow:
        uow.append_event(
            kind="dag-paused", message="old", dag_name="daily-sales", at=NOW - timedelta(days=95)
        )
        uow.append_event(kind="dag-paused", message="new", dag_name="daily-sales", at=NOW)

    dry = clean(store, logs, older_than=timedelta(days=90), now=NOW, dry_run=True)
    assert (dry.runs, dry.task_instances, dry.events) == (3, 6, 4)
    assert len(remaining(store)) == 6

    done = clean(store, logs, older_than=timedelta(days=90), now=NOW)
    assert sorted(done.run_ids) == [old_ok.id, old_failed.id, old_cancelled.id]
    assert (done.task_instances, done.events, done.logs) == (6, 4, 2)
    assert remaining(store) == [recent.id, running.id, queued.id]
    assert logs.read(keys[old_ok.id]) is None
    assert logs.read(keys[old_failed.id]) is None
    assert logs.read(keys[recent.id]) == f"log of run {recent.id}\n"
    assert logs.read(keys[running.id]) is not None
    with store.transaction() as uow:
        assert uow.list_task_instances(old_ok.id) == []
        assert len(uow.list_task_instances(recent.id)) == 2
        assert [e.message for e in uow.list_events(dag_name="daily-sales")] == ["new"]
        assert {e.run_id for e in uow.list_events(kind="run-started")} == {
            recent.id,
            running.id,
            queued.id,
        }


def test_a_batch_stops_at_its_task_row_bound_but_takes_at_least_one_run(store: Store) -> None:
    add_dag(store)
    for day in (1, 2, 3):
        make_run(store, day, DagRunState.SUCCEEDED, finished_days_ago=100)
    cutoff = NOW - timedelta(days=90)
    with store.transaction() as uow:
        first = uow.delete_old_runs(cutoff, max_runs=10, max_rows=3)
        second = uow.delete_old_runs(cutoff, max_runs=10, max_rows=1)
    assert (len(first.runs), first.task_instances) == (1, 2)
    assert (len(second.runs), second.task_instances) == (1, 2)


def test_db_clean_through_the_cli(
    store: Store, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_dag(store)
    make_run(store, 1, DagRunState.SUCCEEDED, finished_days_ago=3650)
    argv = ["db", "clean", "--database-url", database_url, "--log-store", str(tmp_path)]
    assert main([*argv, "--older-than", "90d", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would delete 1 runs, 2 task instances")
    assert remaining(store) != []
    assert main([*argv, "--older-than", "soon"]) == 2
    assert "'soon' is not a duration" in capsys.readouterr().err
    assert main([*argv, "--older-than", "90d"]) == 0
    assert capsys.readouterr().out.startswith("deleted 1 runs, 2 task instances, 1 events")
    assert remaining(store) == []
