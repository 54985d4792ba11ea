"""Rows most store tests start from: a valid DAG and one run of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controller.engine.states import RunType
from controller.store import DagRunRecord, Store

SPEC: dict[str, Any] = {
    "name": "daily-sales",
    "tasks": [{"name": "extract"}, {"name": "load", "dependsOn": ["extract"]}],
}
LOGICAL_DATE = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


def add_dag(store: Store, name: str = "daily-sales") -> None:
    with store.transaction() as uow:
        uow.upsert_dag(
            name=name, path=f"dags/{name}.yaml", revision="a" * 40, spec_hash="h1", spec=SPEC
        )


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
