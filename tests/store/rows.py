"""Rows most store tests start from: a valid DAG, and a fixed logical date."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.store import Store

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
