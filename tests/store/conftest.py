"""The `run` fixture: a valid DAG and one queued run of it, on each backend."""

from __future__ import annotations

import pytest

from controller.base.states import RunType
from controller.store import DagRunRecord, Store
from tests.store.rows import LOGICAL_DATE, SPEC, add_dag


@pytest.fixture
def run(store: Store) -> DagRunRecord:
    add_dag(store)
    with store.transaction() as uow:
        record, _ = uow.create_run(
            dag_name="daily-sales",
            logical_date=LOGICAL_DATE,
            run_type=RunType.SCHEDULED,
            revision="a" * 40,
            spec=SPEC,
        )
    return record
