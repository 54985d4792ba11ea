"""A run queued by another process (`kubedag trigger`) is started without waiting for a poll."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from controller.base.states import DagRunState
from controller.engine.seam import LaunchOrder
from controller.operations.requests import request_cancel
from controller.runtime.engine import Engine
from controller.runtime.manual import trigger_run
from controller.store import Store, create_engine_for, upgrade
from tests.engine.support import dag, task
from tests.runtime.inprocess import InProcessExecutor, Outcome
from tests.runtime.support import Recorder, run_state, store_dag, wait_for

pytestmark = pytest.mark.postgres

PAIR = dag(task("first"), task("second", "first"), name="pair")
LONG = dag(task("wait"), name="long")
NO_POLL = 3600.0
"""Longer than any test: a run that starts did not wait for the poll."""


@pytest.fixture
def url(postgres_database_url: str) -> str:
    upgrade(postgres_database_url)
    return postgres_database_url


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    store = Store(create_engine_for(url))
    release = threading.Event()

    def hold_long_runs(order: LaunchOrder) -> Outcome:
        if order.dag_name == "long":
            release.wait(30)
        return Outcome.succeeded()

    executor = InProcessExecutor(Recorder(hold_long_runs), workers=4)
    started = Engine(store, executor, poll_seconds=NO_POLL)
    started.start()
    try:
        assert started.listener is not None
        assert started.listener.listening.wait(10)
        yield started
    finally:
        release.set()
        started.stop()
        executor.close()
        store.close()


@pytest.fixture
def other_process(url: str) -> Iterator[Store]:
    """A store of its own, as `kubedag trigger` in another process has."""
    store = Store(create_engine_for(url))
    try:
        yield store
    finally:
        store.close()


def test_a_triggered_run_starts_and_finishes_without_a_poll(
    engine: Engine, other_process: Store
) -> None:
    store_dag(other_process, PAIR)
    for _ in range(3):
        run = trigger_run(other_process, dag_name="pair", params={})
        wait_for(lambda run_id=run.id: run_state(other_process, run_id) is DagRunState.SUCCEEDED)


def test_a_stopped_engine_stops_listening(url: str) -> None:
    store = Store(create_engine_for(url))
    executor = InProcessExecutor(Recorder(), workers=1)
    engine = Engine(store, executor, poll_seconds=NO_POLL)
    engine.start()
    listener = engine.listener
    assert listener is not None
    engine.stop()
    executor.close()
    store.close()
    assert engine.listener is None
    assert not listener.listening.is_set()


def test_a_cancel_asked_by_another_process_is_applied_without_a_poll(
    engine: Engine, other_process: Store
) -> None:
    store_dag(other_process, LONG)
    run = trigger_run(other_process, dag_name="long", params={})
    wait_for(lambda: run_state(other_process, run.id) is DagRunState.RUNNING)
    request_cancel(other_process, run.id, by="test")
    wait_for(lambda: run_state(other_process, run.id) is DagRunState.CANCELLED)
