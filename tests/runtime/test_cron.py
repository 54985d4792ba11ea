"""Which logical dates are due: catch-up on and off, start and end dates, DST days."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from controller.runtime.cron import due_runs
from controller.spec.model import Dag
from tests.engine.support import task

HOURLY = Dag(
    name="hourly",
    tasks=(task("a"),),
    schedule="@hourly",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
)
NOON = datetime(2026, 1, 3, 12, 30, tzinfo=UTC)


def test_catchup_creates_every_missed_run_oldest_first() -> None:
    last = datetime(2026, 1, 3, 8, tzinfo=UTC)
    assert due_runs(HOURLY, last_logical_date=last, now=NOON, catchup=True) == [
        datetime(2026, 1, 3, hour, tzinfo=UTC) for hour in (9, 10, 11, 12)
    ]


def test_catchup_is_bounded_per_call_and_continues_from_the_newest() -> None:
    first = due_runs(HOURLY, last_logical_date=None, now=NOON, catchup=True, max_catchup=10)
    assert first == [datetime(2026, 1, 1, hour, tzinfo=UTC) for hour in range(10)]
    second = due_runs(HOURLY, last_logical_date=first[-1], now=NOON, catchup=True, max_catchup=10)
    assert second[0] == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_without_catchup_only_the_latest_due_run_is_created() -> None:
    last = datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert due_runs(HOURLY, last_logical_date=last, now=NOON, catchup=False) == [
        datetime(2026, 1, 3, 12, tzinfo=UTC)
    ]


def test_nothing_is_due_when_the_latest_run_is_current() -> None:
    last = datetime(2026, 1, 3, 12, tzinfo=UTC)
    assert due_runs(HOURLY, last_logical_date=last, now=NOON, catchup=True) == []
    assert due_runs(HOURLY, last_logical_date=last, now=NOON, catchup=False) == []


def test_a_dag_without_start_date_or_runs_gets_only_its_latest_due_run() -> None:
    fresh = replace(HOURLY, start_date=None)
    assert due_runs(fresh, last_logical_date=None, now=NOON, catchup=True) == [
        datetime(2026, 1, 3, 12, tzinfo=UTC)
    ]


def test_start_and_end_dates_bound_the_runs() -> None:
    bounded = replace(
        HOURLY,
        start_date=datetime(2026, 1, 3, 10, 15, tzinfo=UTC),
        end_date=datetime(2026, 1, 3, 11, 59, tzinfo=UTC),
    )
    assert due_runs(bounded, last_logical_date=None, now=NOON, catchup=True) == [
        datetime(2026, 1, 3, 11, tzinfo=UTC)
    ]
    later = NOON + timedelta(days=2)
    assert due_runs(bounded, last_logical_date=None, now=later, catchup=False) == [
        datetime(2026, 1, 3, 11, tzinfo=UTC)
    ]
    assert (
        due_runs(
            replace(bounded, start_date=NOON + timedelta(hours=1)),
            last_logical_date=None,
            now=NOON,
            catchup=True,
        )
        == []
    )


def berlin_daily_0230(start: datetime) -> Dag:
    return Dag(
        name="berlin",
        tasks=(task("a"),),
        schedule="30 2 * * *",
        timezone="Europe/Berlin",
        start_date=start,
    )


def test_on_the_spring_forward_day_a_missing_time_fires_once() -> None:
    # 2026-03-29: Berlin skips 02:00-03:00. CronTrigger reads 02:30 at the old offset
    # (+01:00), so the run fires once, at 01:30 UTC (03:30 local summer time).
    dag = berlin_daily_0230(datetime(2026, 3, 28, tzinfo=UTC))
    dates = due_runs(
        dag, last_logical_date=None, now=datetime(2026, 3, 30, 12, tzinfo=UTC), catchup=True
    )
    assert dates == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]


def test_on_the_fall_back_day_a_repeated_time_fires_twice() -> None:
    # 2026-10-25: Berlin lives 02:00-03:00 twice; 02:30 happens at 00:30 and 01:30 UTC.
    dag = berlin_daily_0230(datetime(2026, 10, 24, tzinfo=UTC))
    dates = due_runs(
        dag, last_logical_date=None, now=datetime(2026, 10, 26, 12, tzinfo=UTC), catchup=True
    )
    assert dates == [
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]


def test_an_hourly_dag_in_berlin_fires_every_utc_hour_across_the_fall_back() -> None:
    hourly = replace(
        HOURLY, timezone="Europe/Berlin", start_date=datetime(2026, 10, 24, 22, tzinfo=UTC)
    )
    dates = due_runs(
        hourly, last_logical_date=None, now=datetime(2026, 10, 25, 3, tzinfo=UTC), catchup=True
    )
    assert dates == [datetime(2026, 10, 24, 22, tzinfo=UTC) + timedelta(hours=n) for n in range(6)]
