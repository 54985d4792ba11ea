"""Schedules fire the way crontab reads them, in the DAG's time zone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from controller.spec.model import Dag, Task
from controller.spec.schedule import PRESETS, ScheduleError, next_fire_times, to_crontab

BASE = Dag(name="d", tasks=(Task(name="a", image="x"),))


def scheduled(schedule: str, **changes: object) -> Dag:
    return replace(BASE, schedule=schedule, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("preset", "fields"), sorted(PRESETS.items()))
def test_presets_expand_to_five_fields(preset: str, fields: str) -> None:
    assert to_crontab(preset) == fields


def test_to_crontab_normalizes_whitespace_and_refuses_other_lengths() -> None:
    assert to_crontab("  0   3 * *  * ") == "0 3 * * *"
    with pytest.raises(ScheduleError, match="has 4 fields"):
        to_crontab("0 3 * *")


def test_day_of_week_1_is_monday_as_in_crontab() -> None:
    after = datetime(2026, 3, 1, tzinfo=UTC)  # a Sunday
    times = next_fire_times(scheduled("0 9 * * 1"), after=after, count=2)
    assert [t.strftime("%a %d") for t in times] == ["Mon 02", "Mon 09"]


@pytest.mark.parametrize("sunday", ["0", "7", "sun"])
def test_sunday_is_0_7_or_sun(sunday: str) -> None:
    after = datetime(2026, 3, 2, tzinfo=UTC)
    (first,) = next_fire_times(scheduled(f"0 0 * * {sunday}"), after=after, count=1)
    assert first.strftime("%a") == "Sun"


def test_day_of_week_steps_count_from_sunday() -> None:
    after = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)  # Sunday, after midnight
    times = next_fire_times(scheduled("0 0 * * */2"), after=after, count=3)
    assert [t.strftime("%a") for t in times] == ["Tue", "Thu", "Sat"]


def test_times_are_in_the_dag_timezone_across_daylight_saving() -> None:
    dag = scheduled("0 3 * * *", timezone="Europe/Berlin")
    times = next_fire_times(dag, after=datetime(2026, 3, 28, 12, tzinfo=UTC), count=2)
    assert [t.isoformat() for t in times] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T03:00:00+02:00",
    ]


def test_a_time_repeated_on_the_fall_back_day_fires_twice_then_moves_on() -> None:
    dag = scheduled("30 2 * * *", timezone="Europe/Berlin")
    times = next_fire_times(dag, after=datetime(2026, 10, 24, 12, tzinfo=UTC), count=3)
    assert [t.isoformat() for t in times] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_fire_times_are_strictly_after_the_given_moment() -> None:
    moment = datetime(2026, 1, 1, 5, tzinfo=UTC)
    (first,) = next_fire_times(scheduled("@hourly"), after=moment, count=1)
    assert first == datetime(2026, 1, 1, 6, tzinfo=UTC)


def test_start_and_end_dates_bound_the_fire_times() -> None:
    dag = scheduled(
        "@daily",
        start_date=datetime(2026, 5, 10, tzinfo=UTC),
        end_date=datetime(2026, 5, 12, tzinfo=UTC),
    )
    times = next_fire_times(dag, after=datetime(2026, 1, 1, tzinfo=UTC), count=5)
    assert [t.day for t in times] == [10, 11, 12]


def test_a_manual_dag_has_no_fire_times() -> None:
    assert next_fire_times(BASE, after=datetime(2026, 1, 1, tzinfo=UTC), count=5) == []
