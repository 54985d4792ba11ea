"""Manual runs: `kubedag trigger`, checked the way the DAG declares its params.

A trigger arrives as strings; the run's templates read typed values. So params are
converted and checked (unknown names, wrong types, values outside enum, missing
required ones: all reported at once) against the DAG's last valid spec, the same spec
the run is then pinned to. The run is only queued here: the engine starts it within
maxActiveRuns like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from controller.base.states import RunType
from controller.spec.model import dag_from_dict
from controller.spec.params import resolve_params
from controller.store import DagRunRecord, Store, UnitOfWork


class TriggerError(ValueError):
    """The run cannot be queued: no such DAG, no valid version, or bad params."""


def trigger_run(
    store: Store,
    *,
    dag_name: str,
    params: Mapping[str, str],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DagRunRecord:
    """Queue a MANUAL run of `dag_name` at logical date now. Raises TriggerError or ParamError."""
    with store.transaction() as uow:
        record = uow.get_dag(dag_name)
        if record is None or record.deleted:
            known = ", ".join(dag.name for dag in uow.list_dags()) or "none"
            raise TriggerError(f"unknown DAG {dag_name!r} (known: {known})")
        if record.spec is None:
            raise TriggerError(
                f"DAG {dag_name!r} has no valid version to run; its file says: {record.error}"
            )
        dag = dag_from_dict(record.spec)
        return queue_manual_run(
            uow,
            dag_name=dag_name,
            spec=record.spec,
            revision=record.spec_revision or record.revision,
            params=resolve_params(dag, params),
            now=clock(),
        )


def queue_manual_run(
    uow: UnitOfWork,
    *,
    dag_name: str,
    spec: dict[str, Any],
    revision: str,
    params: dict[str, Any],
    now: datetime,
) -> DagRunRecord:
    """Queue a MANUAL run pinned to `spec` at `revision`, with its run-queued event.

    The one way a manual run is made, for `kubedag trigger` (the DAG's stored spec) and
    `kubedag run` (a local file's), so both leave the same trace in the event log.
    """
    run, _ = uow.create_run(
        dag_name=dag_name,
        logical_date=now,
        run_type=RunType.MANUAL,
        revision=revision,
        spec=spec,
        params=params,
    )
    uow.append_event(
        kind="run-queued",
        message=f"manual run of {dag_name} queued",
        dag_name=dag_name,
        run_id=run.id,
        data={"params": params},
    )
    return run
