"""Backfill: a week of runs, each date once, within the caps, against the scheduler too."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.base.states import DagRunState, RunType
from controller.cli import main
from controller.operations.backfill import backfill
from controller.operations.requests import ActionRefusedError, NotFoundError
from controller.runtime.scheduler import Scheduler
from controller.spec.model import Dag
from controller.store import Store
from tests.engine.support import task
from tests.runtime.support import Recorder, engine_on, store_dag

START = datetime(2026, 3, 1, tzinfo=UTC)
DAILY = Dag(
    name="daily",
    tasks=(task("extract"), task("load", "extract")),
    schedule="0 3 * * *",
    start_date=START,
    end_date=datetime(2026, 6, 1, tzinfo=UTC),
    max_active_runs=3,
)


def runs_of(store: Store) -> list[tuple[datetime, RunType, DagRunState]]:
    with store.transaction() as uow:
        runs = uow.list_runs(dag_name="daily", limit=1000)
    return sorted((run.logical_date, run.run_type, run.state) for run in runs)


def test_a_week_backfilled_runs_each_date_once_within_its_cap(store: Store) -> None:
    store_dag(store, DAILY)
    done = backfill(
        store, "daily", start="2026-03-02", end="2026-03-08", by="test", max_active_runs=2
    )
    assert [run.logical_date for run in done.created] == [
        datetime(2026, 3, day, 3, tzinfo=UTC) for day in range(2, 9)
    ]
    recorder = Recorder()
    with engine_on(store, recorder) as engine:
        engine.wake()
        engine.run_until_idle(timeout=30)
    assert [state for _, _, state in runs_of(store)] == [DagRunState.SUCCEEDED] * 7
    assert recorder.peak["daily"] <= 2
    with store.transaction() as uow:
        starts = sorted(
            (run.started_at, run.finished_at) for run in uow.list_runs(dag_name="daily")
        )
    overlapping = max(
        sum(1 for start, end in starts if start <= moment < end) for moment, _ in starts
    )
    assert overlapping == 2


def test_the_scheduler_firing_for_a_backfilled_date_makes_no_second_run(store: Store) -> None:
    store_dag(store, DAILY)
    backfill(store, "daily", start="2026-03-02", end="2026-03-04", by="test")
    fired = datetime(2026, 3, 3, 3, 0, 30, tzinfo=UTC)
    scheduler = Scheduler(store, on_runs_created=lambda ids: None, clock=lambda: fired)
    assert scheduler.run_pass("daily") == []
    assert [(date.day, kind) for date, kind, _ in runs_of(store)] == [
        (2, RunType.BACKFILL),
        (3, RunType.BACKFILL),
        (4, RunType.BACKFILL),
    ]


def test_a_backfill_leaves_dates_with_runs_alone_and_a_dry_run_creates_nothing(
    store: Store,
) -> None:
    store_dag(store, DAILY)
    backfill(store, "daily", start="2026-03-03", end="2026-03-03", by="test")
    dry = backfill(store, "daily", start="2026-03-02", end="2026-03-04", by="test", dry_run=True)
    assert (len(dry.dates), list(dry.existing), dry.created) == (
        3,
        [datetime(2026, 3, 3, 3, tzinfo=UTC)],
        [],
    )
    again = backfill(store, "daily", start="2026-03-02", end="2026-03-04", by="test")
    assert len(again.created) == 2
    assert len(runs_of(store)) == 3


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-02-27", "2026-03-02", "--from 2026-02-27T00:00:00Z is before DAG daily's startDate"),
        ("2026-05-30", "2026-06-03", "--to 2026-06-03T23:59:59Z is after DAG daily's endDate"),
        ("2026-03-05", "2026-03-02", "the range is empty"),
        ("March", "2026-03-02", "'March' is not a date"),
    ],
)
def test_a_range_outside_the_dags_dates_is_refused_and_creates_nothing(
    store: Store, start: str, end: str, message: str
) -> None:
    store_dag(store, DAILY)
    with pytest.raises(ActionRefusedError, match=message):
        backfill(store, "daily", start=start, end=end, by="test")
    assert runs_of(store) == []


def test_an_unknown_dag_is_named(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no DAG named 'weekly'"):
        backfill(store, "weekly", start="2026-03-01", end="2026-03-02", by="test")


def test_backfill_through_the_cli_shows_and_follows_its_runs(
    store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dag(store, DAILY)
    argv = ["backfill", "daily", "--from", "2026-03-02", "--to", "2026-03-03"]
    assert main([*argv, "--dry-run", "--database-url", database_url]) == 0
    assert capsys.readouterr().out == (
        "2026-03-02 03:00:00Z  would be created\n"
        "2026-03-03 03:00:00Z  would be created\n"
        "daily: 2 dates, would create 2\n"
    )
    assert main([*argv, "--database-url", database_url]) == 0
    assert "daily: 2 dates, created 2" in capsys.readouterr().out
    assert main([*argv[:3], "2026-01-01", *argv[4:], "--database-url", database_url]) == 2
    assert "before DAG daily's startDate" in capsys.readouterr().err
    assert len(runs_of(store)) == 2
