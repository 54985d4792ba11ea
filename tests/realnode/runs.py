"""Waiting on the deployed controller through its database, as `kubedag runs` would."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from controller.base.states import DagRunState
from controller.store import Store, TaskInstanceRecord
from tests.realnode.conftest import Deployment

T = TypeVar("T")


def wait_for(
    deployment: Deployment, condition: Callable[[], T | None], *, timeout: float, what: str
) -> T:
    """Poll `condition` until it returns a value; on timeout show the controller's state."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}\n"
                f"{deployment.controller.diagnosis()}"
            )
        time.sleep(0.5)


def synced(deployment: Deployment, names: set[str], *, timeout: float = 120) -> None:
    def known() -> bool:
        with deployment.store.transaction() as uow:
            return names <= {dag.name for dag in uow.list_dags() if dag.spec is not None}

    wait_for(deployment, known, timeout=timeout, what=f"DAGs {sorted(names)} to sync")


def finished(
    deployment: Deployment, run_ids: dict[str, int], *, timeout: float
) -> dict[str, DagRunState]:
    def states() -> dict[str, DagRunState] | None:
        with deployment.store.transaction() as uow:
            runs = {name: uow.get_run(run_id) for name, run_id in run_ids.items()}
        found = {name: run.state for name, run in runs.items() if run is not None}
        done = len(found) == len(run_ids) and all(s.finished for s in found.values())
        return found if done else None

    return wait_for(deployment, states, timeout=timeout, what=f"runs {run_ids} to finish")


def task_rows(store: Store, run_id: int) -> list[TaskInstanceRecord]:
    with store.transaction() as uow:
        return list(uow.list_task_instances(run_id))
