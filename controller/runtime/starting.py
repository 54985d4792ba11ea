"""Starting queued runs within maxActiveRuns, and reading a DAG's caps for the engine.

Caps come from the DAG's current row (an operator who lowers maxActiveTasks means it
for the runs in flight too), falling back to the run's own snapshot for a DAG whose row
has no valid spec. Starting is a compare-and-set QUEUED -> RUNNING per run, oldest
logical date first (`admission.runs_to_start`), so two engines that both saw a run
queued start it once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from controller.base.states import DagRunState
from controller.engine.admission import runs_to_start
from controller.store import DagRunRecord, UnitOfWork

SCAN_LIMIT = 100_000
DEFAULT_MAX_ACTIVE_RUNS = 1
DEFAULT_MAX_ACTIVE_TASKS = 16


@dataclass(frozen=True)
class DagLimits:
    path: str | None
    """The DAG file's path in the repository, for LaunchOrder.dag_path."""
    max_active_runs: int
    max_active_tasks: int


def _int(spec: Mapping[str, Any], key: str, default: int) -> int:
    value = spec.get(key, default)
    return value if isinstance(value, int) else default


def dag_limits(uow: UnitOfWork, dag_name: str, *, fallback: Mapping[str, Any]) -> DagLimits:
    record = uow.get_dag(dag_name)
    spec = record.spec if record is not None and record.spec is not None else fallback
    return DagLimits(
        path=None if record is None else record.path,
        max_active_runs=_int(spec, "maxActiveRuns", DEFAULT_MAX_ACTIVE_RUNS),
        max_active_tasks=_int(spec, "maxActiveTasks", DEFAULT_MAX_ACTIVE_TASKS),
    )


@dataclass(frozen=True)
class Started:
    run: DagRunRecord
    """The run, now RUNNING."""
    ran_before: bool
    """It ran before (a retried run): it has rows of earlier tries. A run that never
    started has none, so they need not be read."""


def start_queued_runs(
    uow: UnitOfWork, *, now: datetime
) -> tuple[list[Started], dict[str, DagLimits]]:
    """Move the queued runs that fit maxActiveRuns to RUNNING; the started runs and caps."""
    by_dag: defaultdict[str, list[DagRunRecord]] = defaultdict(list)
    for run in uow.list_runs(states=[DagRunState.QUEUED], limit=SCAN_LIMIT):
        by_dag[run.dag_name].append(run)
    started: list[Started] = []
    limits: dict[str, DagLimits] = {}
    for dag_name, runs in by_dag.items():
        limits[dag_name] = dag_limits(uow, dag_name, fallback=runs[0].spec)
        running = uow.count_active_runs(dag_name)
        allowed = limits[dag_name].max_active_runs
        for run in runs_to_start(runs, running=running, max_active_runs=allowed):
            if uow.cas_run_state(
                run.id, expected=DagRunState.QUEUED, new=DagRunState.RUNNING, started_at=now
            ):
                uow.append_event(
                    kind="run-started",
                    message=f"run {run.id} of {dag_name} started",
                    dag_name=dag_name,
                    run_id=run.id,
                    at=now,
                )
                started.append(
                    Started(
                        replace(run, state=DagRunState.RUNNING, started_at=now),
                        ran_before=run.started_at is not None or run.finished_at is not None,
                    )
                )
    return started, limits
