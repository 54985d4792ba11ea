"""DagRuns: one per (dag, logical date) whoever races to create it, CAS state changes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError, StatementError

from controller.base.states import DagRunState, RunType
from controller.store import DagRunRecord, Store
from tests.store.rows import LOGICAL_DATE, SPEC, add_dag

RACERS = 8


def create(store: Store, logical_date: datetime, *, revision: str = "a" * 40) -> tuple[int, bool]:
    with store.transaction() as uow:
        record, created = uow.create_run(
            dag_name="daily-sales",
            logical_date=logical_date,
            run_type=RunType.SCHEDULED,
            revision=revision,
            spec=SPEC,
        )
    return record.id, created


def test_a_run_round_trips(store: Store) -> None:
    add_dag(store)
    with store.transaction() as uow:
        record, created = uow.create_run(
            dag_name="daily-sales",
            logical_date=LOGICAL_DATE,
            run_type=RunType.MANUAL,
            revision="a" * 40,
            spec=SPEC,
            params={"region": "us", "days": [1, 2]},
        )
    assert created
    with store.transaction() as uow:
        assert uow.get_run(record.id) == record
        assert uow.find_run("daily-sales", LOGICAL_DATE) == record
    assert record.dag_name == "daily-sales"
    assert record.logical_date == LOGICAL_DATE
    assert record.run_type is RunType.MANUAL
    assert record.revision == "a" * 40
    assert record.spec == SPEC
    assert record.params == {"region": "us", "days": [1, 2]}
    assert record.state is DagRunState.QUEUED
    assert record.created_at.tzinfo is UTC
    assert record.started_at is None
    assert record.finished_at is None


def test_creating_the_same_run_twice_returns_the_first(store: Store) -> None:
    add_dag(store)
    first_id, first_created = create(store, LOGICAL_DATE)
    second_id, second_created = create(store, LOGICAL_DATE, revision="b" * 40)
    assert (first_created, second_created) == (True, False)
    assert first_id == second_id
    with store.transaction() as uow:
        run = uow.get_run(first_id)
    assert run is not None
    assert run.revision == "a" * 40


def test_racing_creators_make_exactly_one_run(store: Store) -> None:
    add_dag(store)
    barrier = threading.Barrier(RACERS)

    def racer() -> tuple[int, bool]:
        barrier.wait(timeout=30)
        with store.transaction() as uow:
            record, created = uow.create_run(
                dag_name="daily-sales",
                logical_date=LOGICAL_DATE,
                run_type=RunType.SCHEDULED,
                revision="a" * 40,
                spec=SPEC,
            )
            # Hold the transaction open so the others' inserts overlap with it.
            time.sleep(0.05)
        return record.id, created

    with ThreadPoolExecutor(RACERS) as pool:
        results = [
            future.result(timeout=60) for future in [pool.submit(racer) for _ in range(RACERS)]
        ]
    assert sum(created for _, created in results) == 1
    assert len({run_id for run_id, _ in results}) == 1
    with store.transaction() as uow:
        assert len(uow.list_runs(dag_name="daily-sales")) == 1


def test_the_same_instant_in_another_zone_is_the_same_run(store: Store) -> None:
    add_dag(store)
    berlin = LOGICAL_DATE.astimezone(ZoneInfo("Europe/Berlin"))
    first_id, _ = create(store, LOGICAL_DATE)
    second_id, created = create(store, berlin)
    assert not created
    assert second_id == first_id


def test_logical_dates_come_back_aware_in_utc(store: Store) -> None:
    add_dag(store)
    new_york = datetime(2026, 3, 8, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    run_id, _ = create(store, new_york)
    with store.transaction() as uow:
        run = uow.get_run(run_id)
    assert run is not None
    assert run.logical_date.tzinfo is UTC
    assert run.logical_date == new_york
    assert run.logical_date == datetime(2026, 3, 8, 6, 30, tzinfo=UTC)


def test_a_naive_datetime_is_refused(store: Store) -> None:
    add_dag(store)
    with pytest.raises(StatementError, match="naive datetime"):
        create(store, datetime(2026, 1, 1))


def test_a_run_needs_its_dag(store: Store) -> None:
    with pytest.raises(IntegrityError):
        create(store, LOGICAL_DATE)


def test_cas_moves_a_run_only_from_the_expected_state(store: Store, run: DagRunRecord) -> None:
    started = datetime(2026, 1, 1, 3, 0, 5, tzinfo=UTC)
    with store.transaction() as uow:
        assert uow.cas_run_state(
            run.id, expected=DagRunState.QUEUED, new=DagRunState.RUNNING, started_at=started
        )
        assert not uow.cas_run_state(run.id, expected=DagRunState.QUEUED, new=DagRunState.FAILED)
        moved = uow.get_run(run.id)
    assert moved is not None
    assert moved.state is DagRunState.RUNNING
    assert moved.started_at == started


def test_cas_accepts_several_expected_states(store: Store, run: DagRunRecord) -> None:
    with store.transaction() as uow:
        assert uow.cas_run_state(
            run.id,
            expected={DagRunState.QUEUED, DagRunState.RUNNING},
            new=DagRunState.FAILED,
            finished_at=datetime.now(UTC),
        )
        finished = uow.get_run(run.id)
    assert finished is not None
    assert finished.state is DagRunState.FAILED


def test_listing_runs_filters_by_dag_and_state_newest_first(store: Store) -> None:
    add_dag(store)
    add_dag(store, "hourly")
    days = [LOGICAL_DATE + timedelta(days=n) for n in range(3)]
    ids = [create(store, day)[0] for day in days]
    with store.transaction() as uow:
        uow.create_run(
            dag_name="hourly",
            logical_date=LOGICAL_DATE,
            run_type=RunType.SCHEDULED,
            revision="a" * 40,
            spec=SPEC,
        )
        uow.cas_run_state(ids[0], expected=DagRunState.QUEUED, new=DagRunState.RUNNING)
    with store.transaction() as uow:
        assert [r.id for r in uow.list_runs(dag_name="daily-sales")] == ids[::-1]
        assert [r.id for r in uow.list_runs(dag_name="daily-sales", limit=2)] == ids[:0:-1]
        assert [r.id for r in uow.list_runs(states=[DagRunState.RUNNING])] == [ids[0]]
        assert len(uow.list_runs()) == 4
        assert uow.count_active_runs("daily-sales") == 1
        assert uow.count_active_runs("hourly") == 0
        assert uow.count_active_runs() == 1


def test_last_run_is_the_latest_logical_date_optionally_by_type(store: Store) -> None:
    add_dag(store)
    with store.transaction() as uow:
        assert uow.last_run("daily-sales") is None
    scheduled_id, _ = create(store, LOGICAL_DATE)
    with store.transaction() as uow:
        manual, _ = uow.create_run(
            dag_name="daily-sales",
            logical_date=LOGICAL_DATE + timedelta(hours=5),
            run_type=RunType.MANUAL,
            revision="a" * 40,
            spec=SPEC,
        )
    with store.transaction() as uow:
        last = uow.last_run("daily-sales")
        last_scheduled = uow.last_run("daily-sales", run_type=RunType.SCHEDULED)
    assert last is not None
    assert last.id == manual.id
    assert last_scheduled is not None
    assert last_scheduled.id == scheduled_id
