"""The scheduler and a running engine wired as the controller wires them."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from controller.base.states import DagRunState
from controller.runtime.engine import Engine
from controller.runtime.scheduler import Scheduler
from controller.store import Store
from tests.runtime.inprocess import InProcessExecutor
from tests.runtime.support import Recorder, store_dag, wait_for
from tests.runtime.test_scheduler import HOURLY, START, FakeClock, dags


def test_runs_the_scheduler_catches_up_are_started_by_the_engine_it_wakes(store: Store) -> None:
    store_dag(store, replace(HOURLY, max_active_runs=2))
    recorder = Recorder()
    executor = InProcessExecutor(recorder)
    engine = Engine(store, executor)
    engine.start()
    scheduler = Scheduler(
        store, on_runs_created=engine.wake, clock=FakeClock(START + timedelta(hours=4))
    )
    try:
        scheduler.apply(dags(store))

        def all_succeeded() -> bool:
            with store.transaction() as uow:
                runs = uow.list_runs(dag_name="hourly")
            return len(runs) == 5 and all(r.state is DagRunState.SUCCEEDED for r in runs)

        wait_for(all_succeeded)
    finally:
        engine.stop()
        executor.close()
    assert len(recorder.orders) == 5
    assert len({order.key.run_id for order in recorder.orders}) == 5
