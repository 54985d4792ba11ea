"""One active DagRun in the engine's memory: its pinned spec, its planner, its row ids.

A run plans against the spec snapshot it was created from, never the DAG's current
version, so a push during a run changes nothing in it. The snapshot is parsed and its
graph indexed once per spec version (`GraphCache`, keyed by a hash of the snapshot),
not once per run or per event. The planner speaks in (task, item, try); the store in
row ids; `ids` maps one to the other for the rows this run has, so rejected results can
be written back without a query.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.base.tries import TryKey
from controller.engine.graph import GraphCache, RunGraph
from controller.engine.planner import RunPlanner
from controller.engine.records import Plan, RunIdentity
from controller.runtime.pending import PendingTry
from controller.runtime.updates import view_of
from controller.spec.model import JSON, Task, dag_from_dict
from controller.store import DagRunRecord, TaskInstanceRecord


def spec_digest(spec: dict[str, Any]) -> str:
    """A stable hash of a run's spec snapshot, the GraphCache key of its version."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class ActiveRun:
    record: DagRunRecord
    graph: RunGraph
    dag_path: str | None
    planner: RunPlanner
    ids: dict[TryKey, int] = field(default_factory=dict)

    @property
    def run_id(self) -> int:
        return self.record.id

    @property
    def dag_name(self) -> str:
        return self.record.dag_name

    def task(self, name: str) -> Task:
        return self.graph.tasks[self.graph.index[name]]

    def item(self, task: str, item_index: int) -> JSON:
        return self.planner.item(task, item_index)

    def remember(self, records: Iterable[TaskInstanceRecord]) -> None:
        for record in records:
            self.ids[record.key] = record.id

    def pending_try(self, record: TaskInstanceRecord) -> PendingTry:
        return PendingTry(
            ti_id=record.id,
            key=record.key,
            dag_name=record.dag_name,
            run_order=(self.record.logical_date, self.record.id),
            not_before=record.not_before,
        )


def identity_of(record: DagRunRecord) -> RunIdentity:
    return RunIdentity(
        run_id=record.id,
        dag_name=record.dag_name,
        logical_date=record.logical_date,
        revision=record.revision,
        run_type=record.run_type,
        params=record.params,
    )


def recover_run(
    record: DagRunRecord,
    rows: list[TaskInstanceRecord],
    *,
    dag_path: str | None,
    graphs: GraphCache,
    now: datetime,
    max_infra_retries: int,
) -> tuple[ActiveRun, Plan]:
    """Build a run's planner from all its rows (none for a run just started)."""
    dag = dag_from_dict(record.spec)
    graph = graphs.get(dag, spec_hash=spec_digest(record.spec))
    planner, plan = RunPlanner.recover(
        graph,
        identity_of(record),
        [view_of(row) for row in rows],
        now=now,
        max_infra_retries=max_infra_retries,
    )
    active = ActiveRun(record=record, graph=graph, dag_path=dag_path, planner=planner)
    active.remember(rows)
    return active, plan
