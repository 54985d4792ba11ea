"""The Scheduler against the store: jobs follow the DAGs, fires create runs exactly once."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from controller.base.states import DagRunState, RunType
from controller.runtime.scheduler import Scheduler
from controller.spec.model import Dag, Param, ParamType
from controller.store import DagRecord, Store, create_engine_for, upgrade
from tests.engine.support import task
from tests.runtime.support import store_dag

START = datetime(2026, 1, 5, tzinfo=UTC)
HOURLY = Dag(
    name="hourly",
    tasks=(task("a"),),
    schedule="@hourly",
    start_date=START,
    catchup=True,
    params=(Param("region", ParamType.STRING, default="eu"),),
)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def dags(store: Store) -> list[DagRecord]:
    with store.transaction() as uow:
        return uow.list_dags(include_deleted=True)


def scheduled_dates(store: Store, name: str) -> list[datetime]:
    with store.transaction() as uow:
        runs = uow.list_runs(dag_name=name, limit=10_000)
    return sorted(run.logical_date for run in runs if run.run_type is RunType.SCHEDULED)


def test_apply_catches_up_and_pins_runs_to_the_dag_version(store: Store) -> None:
    store_dag(store, HOURLY)
    clock = FakeClock(START + timedelta(hours=3, minutes=5))
    woken: list[list[int]] = []
    scheduler = Scheduler(store, on_runs_created=woken.append, clock=clock)
    scheduler.apply(dags(store))
    assert scheduler.job_ids == ["hourly"]
    assert scheduled_dates(store, "hourly") == [START + timedelta(hours=n) for n in range(4)]
    assert len(woken) == 1
    assert len(woken[0]) == 4
    with store.transaction() as uow:
        run = uow.find_run("hourly", START)
    assert run is not None
    assert run.state is DagRunState.QUEUED
    assert run.params == {"region": "eu"}
    assert run.spec["schedule"] == "@hourly"
    assert run.revision.startswith("c0ffee")


def test_without_catchup_only_the_latest_run_is_created(store: Store) -> None:
    store_dag(store, replace(HOURLY, catchup=False))
    scheduler = Scheduler(
        store,
        on_runs_created=lambda ids: None,
        clock=FakeClock(START + timedelta(hours=5, minutes=1)),
    )
    scheduler.apply(dags(store))
    assert scheduled_dates(store, "hourly") == [START + timedelta(hours=5)]


def test_paused_deleted_and_manual_dags_have_no_job_and_create_nothing(store: Store) -> None:
    store_dag(store, replace(HOURLY, name="paused"))
    store_dag(store, replace(HOURLY, name="deleted"))
    store_dag(store, replace(HOURLY, name="manual", schedule=None))
    with store.transaction() as uow:
        uow.set_dag_paused("paused", True)
        uow.mark_dag_deleted("deleted")
    scheduler = Scheduler(
        store, on_runs_created=lambda ids: None, clock=FakeClock(START + timedelta(days=1))
    )
    scheduler.apply(dags(store))
    assert scheduler.job_ids == []
    assert scheduled_dates(store, "paused") == []
    assert scheduled_dates(store, "deleted") == []
    assert scheduled_dates(store, "manual") == []


def test_jobs_are_replaced_when_the_schedule_changes_and_removed_when_paused(store: Store) -> None:
    store_dag(store, HOURLY)
    clock = FakeClock(START + timedelta(minutes=30))
    scheduler = Scheduler(store, on_runs_created=lambda ids: None, clock=clock)
    scheduler.start()
    try:
        first = scheduler._scheduler.get_job("hourly")  # type: ignore[union-attr]
        assert first is not None
        store_dag(store, replace(HOURLY, schedule="*/15 * * * *"), revision="d" * 40)
        scheduler.apply(dags(store))
        job = scheduler._scheduler.get_job("hourly")  # type: ignore[union-attr]
        assert job is not None
        assert "minute='*/15'" in str(job.trigger)
        with store.transaction() as uow:
            uow.set_dag_paused("hourly", True)
        scheduler.apply(dags(store))
        assert scheduler.job_ids == []
        assert scheduler._scheduler.get_job("hourly") is None  # type: ignore[union-attr]
    finally:
        scheduler.stop()


def test_a_fire_of_the_apscheduler_job_runs_a_pass_for_its_dag(store: Store) -> None:
    store_dag(store, HOURLY)
    clock = FakeClock(START - timedelta(hours=1))
    created = threading.Event()
    scheduler = Scheduler(store, on_runs_created=lambda ids: created.set(), clock=clock)
    scheduler.start()
    try:
        assert scheduled_dates(store, "hourly") == []
        clock.now = START + timedelta(hours=1, minutes=5)
        job = scheduler._scheduler.get_job("hourly")  # type: ignore[union-attr]
        assert job is not None
        job.modify(next_run_time=datetime.now(UTC))
        assert created.wait(10)
    finally:
        scheduler.stop()
    assert scheduled_dates(store, "hourly") == [START, START + timedelta(hours=1)]


def race(scheduler: Scheduler, barrier: threading.Barrier) -> None:
    barrier.wait(5)
    scheduler.run_pass("hourly")


def test_two_schedulers_racing_through_a_simulated_week_create_every_run_exactly_once(
    postgres_database_url: str,
) -> None:
    upgrade(postgres_database_url)
    stores = [Store(create_engine_for(postgres_database_url)) for _ in range(2)]
    try:
        store_dag(stores[0], HOURLY)
        clock = FakeClock(START)
        created: list[list[int]] = [[], []]
        schedulers = [
            Scheduler(store, on_runs_created=created[n].extend, clock=clock, max_catchup=5)
            for n, store in enumerate(stores)
        ]
        rng = random.Random(7)
        end = START + timedelta(days=7)
        while clock.now < end:
            # Irregular ticks, with outages of up to a day where neither controller runs.
            clock.now = min(
                end, clock.now + timedelta(minutes=rng.choice([7, 31, 59, 61, 180, 1440]))
            )
            barrier = threading.Barrier(2)

            threads = [
                threading.Thread(target=race, args=(scheduler, barrier)) for scheduler in schedulers
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        expected = [START + timedelta(hours=n) for n in range(7 * 24 + 1)]
        assert scheduled_dates(stores[0], "hourly") == expected
        assert not set(created[0]) & set(created[1])
        assert len(created[0]) + len(created[1]) == len(expected)
        assert created[0]
        assert created[1]
    finally:
        for store in stores:
            store.close()
