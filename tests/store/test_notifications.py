"""LISTEN/NOTIFY: a request committed by one process wakes the engine's listener in another."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from controller.base.states import DagRunState, RunType
from controller.store import RequestListener, Store, create_engine_for, upgrade
from tests.store.rows import LOGICAL_DATE, SPEC, add_dag

WAIT_SECONDS = 10.0


class Wakes:
    """Counts the listener's calls; `wait_for(n)` blocks until there were at least n."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count = 0

    def __call__(self, what: frozenset[str]) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait_for(self, count: int) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.count >= count, WAIT_SECONDS):
                raise TimeoutError(f"{self.count} wakes, expected {count}")


@pytest.fixture
def postgres_store(postgres_database_url: str) -> Iterator[Store]:
    upgrade(postgres_database_url)
    opened = Store(create_engine_for(postgres_database_url))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def listener(postgres_store: Store, wakes: Wakes) -> Iterator[RequestListener]:
    started = postgres_store.listen_for_requests(wakes)
    assert started is not None
    try:
        assert started.listening.wait(WAIT_SECONDS)
        yield started
    finally:
        started.stop()


def queue_a_run(store: Store, *, days: int = 0, state: DagRunState = DagRunState.QUEUED) -> None:
    with store.transaction() as uow:
        uow.create_run(
            dag_name="daily-sales",
            logical_date=LOGICAL_DATE + timedelta(days=days),
            run_type=RunType.MANUAL,
            revision="a" * 40,
            spec=SPEC,
            state=state,
        )


LISTENERS = (
    "FROM pg_stat_activity "
    "WHERE application_name = 'kubedag-listener' AND datname = current_database()"
)


def listening_backends(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) {LISTENERS}")).scalar_one())


def wait_for_backends(store: Store, count: int) -> None:
    """A closed connection's server process ends a moment after the client closed it."""
    deadline = time.monotonic() + WAIT_SECONDS
    while listening_backends(store) != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{listening_backends(store)} listening backends, expected {count}")
        time.sleep(0.02)


@pytest.mark.postgres
def test_the_listener_looks_once_as_soon_as_it_listens(
    listener: RequestListener, wakes: Wakes
) -> None:
    # Requests made before it listened were never delivered to it.
    assert wakes.count == 1


@pytest.mark.postgres
def test_a_queued_run_wakes_the_listener_when_its_transaction_commits(
    postgres_store: Store, listener: RequestListener, wakes: Wakes
) -> None:
    add_dag(postgres_store)
    queue_a_run(postgres_store)
    wakes.wait_for(2)


@pytest.mark.postgres
def test_a_request_of_another_kind_wakes_the_listener_through_the_hook(
    postgres_store: Store, listener: RequestListener, wakes: Wakes
) -> None:
    with postgres_store.transaction() as uow:
        uow.notify_requests_pending()
    wakes.wait_for(2)


@pytest.mark.postgres
def test_the_listener_reconnects_after_its_connection_is_killed(
    postgres_store: Store, listener: RequestListener, wakes: Wakes
) -> None:
    with postgres_store.engine.connect() as connection:
        killed = connection.execute(text(f"SELECT pg_terminate_backend(pid) {LISTENERS}")).all()
    assert len(killed) == 1
    # Once back it looks again, for what was sent while it was away.
    wakes.wait_for(2)
    assert listener.reconnects == 1
    assert listener.listening.wait(WAIT_SECONDS)
    with postgres_store.transaction() as uow:
        uow.notify_requests_pending()
    wakes.wait_for(3)


@pytest.mark.postgres
def test_a_stopped_listener_leaves_no_connection_behind(postgres_store: Store) -> None:
    listener = postgres_store.listen_for_requests(lambda what: None)
    assert listener is not None
    assert listener.listening.wait(WAIT_SECONDS)
    assert listening_backends(postgres_store) == 1
    listener.stop()
    wait_for_backends(postgres_store, 0)


def test_sqlite_has_no_listener_and_its_hook_does_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kubedag.db'}"
    upgrade(url)
    store = Store(create_engine_for(url))
    try:
        assert store.listen_for_requests(lambda what: None) is None
        with store.transaction() as uow:
            uow.notify_requests_pending()
    finally:
        store.close()
