"""Builders for runtime tests: DAGs stored as the controller stores them, runs, engines."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from controller.base.states import DagRunState, RunType
from controller.engine.seam import LaunchOrder
from controller.runtime.engine import Engine
from controller.spec.model import Dag, dag_to_dict
from controller.store import DagRunRecord, Store, TaskInstanceRecord
from tests.runtime.inprocess import Behaviour, InProcessExecutor, Outcome

LOGICAL_DATE = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
REVISION = "c0ffee" * 6 + "abcd"


def store_dag(store: Store, the_dag: Dag, *, revision: str = REVISION) -> None:
    with store.transaction() as uow:
        uow.upsert_dag(
            name=the_dag.name,
            path=f"dags/{the_dag.name}.yaml",
            revision=revision,
            spec_hash=f"hash-{revision}",
            spec=dag_to_dict(the_dag),
        )


def queue_run(
    store: Store,
    the_dag: Dag,
    *,
    logical_date: datetime = LOGICAL_DATE,
    params: dict[str, object] | None = None,
) -> DagRunRecord:
    with store.transaction() as uow:
        record, created = uow.create_run(
            dag_name=the_dag.name,
            logical_date=logical_date,
            run_type=RunType.MANUAL,
            revision=REVISION,
            spec=dag_to_dict(the_dag),
            params=params or {},
        )
    assert created
    return record


def run_state(store: Store, run_id: int) -> DagRunState:
    with store.transaction() as uow:
        record = uow.get_run(run_id)
    assert record is not None
    return record.state


def task_rows(store: Store, run_id: int) -> list[TaskInstanceRecord]:
    with store.transaction() as uow:
        return uow.list_task_instances(run_id)


def final_states(store: Store, run_id: int) -> dict[tuple[str, int], str]:
    """The state of each instance's latest try."""
    latest: dict[tuple[str, int], str] = {}
    for row in task_rows(store, run_id):
        latest[(row.task_name, row.item_index)] = row.state.value
    return latest


def wait_for(condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


class Recorder:
    """A behaviour wrapper that counts calls per (task, item, try) and tracks concurrency."""

    def __init__(self, decide: Behaviour | None = None) -> None:
        self._decide = decide or (lambda order: Outcome.succeeded(order.task.name))
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, int, int]] = Counter()
        self.orders: list[LaunchOrder] = []
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.running_in_run: Counter[int] = Counter()
        self.peak_of_run: Counter[int] = Counter()
        self.peak_total = 0

    def __call__(self, order: LaunchOrder) -> Outcome:
        with self._lock:
            self.calls[(order.task.name, order.key.item_index, order.key.try_number)] += 1
            self.orders.append(order)
            self.running[order.dag_name] += 1
            self.peak[order.dag_name] = max(self.peak[order.dag_name], self.running[order.dag_name])
            self.running_in_run[order.key.run_id] += 1
            self.peak_of_run[order.key.run_id] = max(
                self.peak_of_run[order.key.run_id], self.running_in_run[order.key.run_id]
            )
            self.peak_total = max(self.peak_total, sum(self.running.values()))
        try:
            return self._decide(order)
        finally:
            with self._lock:
                self.running[order.dag_name] -= 1
                self.running_in_run[order.key.run_id] -= 1


class FastClock:
    """Wall-clock time running `speed` times faster, so backoffs of seconds take milliseconds."""

    def __init__(self, speed: float = 100.0) -> None:
        self._origin = datetime.now(UTC)
        self._start = time.monotonic()
        self._speed = speed

    def __call__(self) -> datetime:
        return self._origin + timedelta(seconds=(time.monotonic() - self._start) * self._speed)


def utc_now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def engine_on(
    store: Store,
    behaviour: Behaviour,
    *,
    workers: int = 8,
    clock: Callable[[], datetime] = utc_now,
    **options: object,
) -> Iterator[Engine]:
    """An unthreaded engine with an in-process executor, stopped and closed afterwards."""
    executor = InProcessExecutor(behaviour, workers=workers, clock=clock)
    # Retry times are read on `clock`, waits are real: a fast clock needs short waits.
    options.setdefault("poll_seconds", 0.05)
    engine = Engine(store, executor, clock=clock, **options)  # type: ignore[arg-type]
    engine.start(background=False)
    try:
        yield engine
    finally:
        engine.stop()
        executor.close()
