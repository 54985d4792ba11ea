"""Cron scheduling: one APScheduler job per schedulable DAG, each fire creating its DagRuns.

APScheduler keeps the clock (a BackgroundScheduler with one CronTrigger job per DAG in
its time zone, job id = DAG name); it does not keep state. A fire does not trust its
own fire time: it runs a *pass* for its DAG, which reads the DAG's latest scheduled run
from the store and creates whatever `due_runs` says is due, each with
`create_run` (INSERT ... ON CONFLICT DO NOTHING on the unique (dag, logical date)).
So a late fire, a restart, catch-up after downtime and two controllers firing the same
minute all end with exactly one run per logical date, and none missing.

Runs are pinned at creation: revision = the DAG's spec_revision, spec = its last valid
spec, params = the declared defaults. Paused, deleted and manual-only DAGs have no job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from controller.base.states import RunType
from controller.runtime.cron import DEFAULT_MAX_CATCHUP, due_runs
from controller.spec.model import Dag, dag_from_dict
from controller.spec.params import resolve_params
from controller.spec.schedule import ScheduleError, cron_trigger
from controller.store import DagRecord, DagRunRecord, Store, UnitOfWork

log = logging.getLogger(__name__)

MAX_PASSES = 100
"""Catch-up passes per DAG per call; each creates at most max_catchup runs."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def queue_dated_run(
    uow: UnitOfWork,
    record: DagRecord,
    *,
    logical_date: datetime,
    run_type: RunType,
    params: dict[str, Any],
    message: str,
    max_active_runs: int | None = None,
) -> tuple[DagRunRecord, bool]:
    """The run of `record`'s DAG at `logical_date`, and whether this call created it.

    A created run is pinned to the DAG's last valid spec and gets a run-queued event
    saying `message`; a date that has a run already keeps it, untouched.
    """
    assert record.spec is not None
    run, new = uow.create_run(
        dag_name=record.name,
        logical_date=logical_date,
        run_type=run_type,
        revision=record.spec_revision or record.revision,
        spec=record.spec,
        params=params,
        max_active_runs=max_active_runs,
    )
    if new:
        uow.append_event(kind="run-queued", message=message, dag_name=record.name, run_id=run.id)
    return run, new


@dataclass(frozen=True)
class _Job:
    """What a job depends on: when any of it changes, the job is replaced."""

    spec_hash: str | None
    schedule: str | None
    timezone: str
    start_date: datetime | None
    end_date: datetime | None


def _job_of(dag: Dag, record: DagRecord) -> _Job:
    return _Job(record.spec_hash, dag.schedule, dag.timezone, dag.start_date, dag.end_date)


class Scheduler:
    def __init__(
        self,
        store: Store,
        *,
        on_runs_created: Callable[[list[int]], None],
        clock: Callable[[], datetime] = utcnow,
        max_catchup: int = DEFAULT_MAX_CATCHUP,
    ) -> None:
        self._store = store
        self._on_runs_created = on_runs_created
        self._clock = clock
        self._max_catchup = max_catchup
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        """Start firing, and create the runs that came due while no scheduler ran."""
        scheduler = BackgroundScheduler(timezone=UTC, daemon=True)
        scheduler.start()
        with self._lock:
            self._scheduler = scheduler
            self._jobs.clear()
        with self._store.transaction() as uow:
            dags = uow.list_dags(include_deleted=True)
        self.apply(dags)
        log.info("scheduler started with %d scheduled DAGs", len(self._jobs))

    def stop(self) -> None:
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            self._jobs.clear()
        if scheduler is not None:
            scheduler.shutdown(wait=False)

    @property
    def job_ids(self) -> list[str]:
        """The DAGs that have a job, sorted."""
        with self._lock:
            return sorted(self._jobs)

    def apply(self, dags: Iterable[DagRecord]) -> None:
        """Make the jobs match `dags` (the whole set), then catch up each scheduled DAG."""
        wanted: dict[str, tuple[DagRecord, Dag, _Job]] = {}
        for record in dags:
            if not record.schedulable or record.spec is None:
                continue
            dag = dag_from_dict(record.spec)
            if dag.schedule is not None:
                wanted[record.name] = (record, dag, _job_of(dag, record))
        with self._lock:
            for name in [name for name in self._jobs if name not in wanted]:
                self._remove_job(name)
            for name, (_, dag, job) in wanted.items():
                if self._jobs.get(name) != job:
                    self._add_job(name, dag, job)
        for record, dag, _ in wanted.values():
            self.run_pass(record.name, dag=dag)

    def run_pass(self, dag_name: str, *, dag: Dag | None = None) -> list[int]:
        """Create the due runs of one DAG; the ids of the runs this call created."""
        created: list[int] = []
        for _ in range(MAX_PASSES):
            batch = self._create_due(dag_name, dag=dag)
            created.extend(batch)
            if len(batch) < self._max_catchup:
                break
        if created:
            self._on_runs_created(created)
        return created

    def _create_due(self, dag_name: str, *, dag: Dag | None) -> list[int]:
        created: list[tuple[int, datetime]] = []
        with self._store.transaction() as uow:
            record = uow.get_dag(dag_name)
            if record is None or not record.schedulable or record.spec is None:
                return []
            if dag is None:
                dag = dag_from_dict(record.spec)
            last = uow.last_run(dag_name, run_type=RunType.SCHEDULED)
            dates = due_runs(
                dag,
                last_logical_date=None if last is None else last.logical_date,
                now=self._clock(),
                catchup=dag.catchup,
                max_catchup=self._max_catchup,
            )
            params = resolve_params(dag, {})
            for logical_date in dates:
                run, new = queue_dated_run(
                    uow,
                    record,
                    logical_date=logical_date,
                    run_type=RunType.SCHEDULED,
                    params=params,
                    message=f"scheduled run of {dag_name} for {logical_date.isoformat()}",
                )
                if new:
                    created.append((run.id, logical_date))
        for run_id, logical_date in created:
            log.info(
                "queued scheduled run %d of %s",
                run_id,
                dag_name,
                extra={"dag": dag_name, "run": run_id, "logical_date": logical_date.isoformat()},
            )
        return [run_id for run_id, _ in created]

    def _fire(self, dag_name: str) -> None:
        try:
            self.run_pass(dag_name)
        except Exception:
            # The next fire (or apply) runs the pass again: due_runs finds what was missed.
            log.exception("scheduled pass of %s failed", dag_name, extra={"dag": dag_name})

    def _add_job(self, name: str, dag: Dag, job: _Job) -> None:
        try:
            trigger = cron_trigger(dag)
        except ScheduleError as error:
            log.error("DAG %s has an unusable schedule: %s", name, error, extra={"dag": name})
            return
        if self._scheduler is not None and trigger is not None:
            self._scheduler.add_job(
                self._fire,
                trigger=trigger,
                args=(name,),
                id=name,
                name=f"schedule of {name}",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        self._jobs[name] = job
        log.info("scheduled DAG %s: %s (%s)", name, dag.schedule, dag.timezone, extra={"dag": name})

    def _remove_job(self, name: str) -> None:
        del self._jobs[name]
        if self._scheduler is not None and self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)
        log.info("unscheduled DAG %s", name, extra={"dag": name})
