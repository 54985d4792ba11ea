"""Backfill: the scheduled runs of a past (or any) range of a DAG, created once each.

Each date is created with the scheduler's own idempotent insert on the unique (dag,
logical date) key, so a date that already has a run (scheduled, manual or an earlier
backfill) keeps it, and the scheduler firing later for a backfilled date finds it made:
no date ever has two runs. The runs are QUEUED with run type backfill; the engine starts
them oldest first within the DAG's maxActiveRuns and, when given, the backfill's own
cap, stored on each run.

The dates are the DAG's own fire times (cron, time zone, DST as the scheduler sees them)
inside the range, which must lie within the DAG's startDate and endDate: a backfill never
makes a run the schedule could not have made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from controller.base.states import DagRunState, RunType
from controller.runtime.actions import ActionRefusedError, NotFoundError
from controller.runtime.cron import fire_times
from controller.runtime.scheduler import queue_dated_run
from controller.spec.model import Dag, dag_from_dict
from controller.spec.params import resolve_params
from controller.spec.schedule import cron_trigger, load_timezone
from controller.store import DagRunRecord, Store

MAX_BACKFILL_RUNS = 1000
"""Runs one backfill may create; a longer range is refused, to be split."""


@dataclass(frozen=True)
class Backfill:
    dag: str
    dates: list[datetime]
    """Every fire time in the range, oldest first (UTC)."""
    existing: dict[datetime, DagRunRecord]
    """The dates that have a run already, which the backfill leaves alone."""
    created: list[DagRunRecord]
    """The runs this backfill created (none for a dry run)."""


def _check_range(dag: Dag, start: datetime, end: datetime) -> None:
    if dag.schedule is None:
        raise ActionRefusedError(
            f"DAG {dag.name} has no schedule, so no dates to backfill; trigger runs instead"
        )
    if start > end:
        raise ActionRefusedError(
            f"the range is empty: --from {_show(start)} is after --to {_show(end)}"
        )
    if dag.start_date is not None and start < dag.start_date:
        raise ActionRefusedError(
            f"--from {_show(start)} is before DAG {dag.name}'s startDate {_show(dag.start_date)}"
        )
    if dag.end_date is not None and end > dag.end_date:
        raise ActionRefusedError(
            f"--to {_show(end)} is after DAG {dag.name}'s endDate {_show(dag.end_date)}"
        )


def _show(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_moment(text: str, *, timezone: str, end: bool = False) -> datetime:
    """An ISO date or date-time; without an offset, in the DAG's time zone.

    A bare date means its whole day: midnight for the start of a range, the day's last
    second for its end, so `--from 2026-03-01 --to 2026-03-07` is a week.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ActionRefusedError(
            f"{text!r} is not a date (2026-03-01) or a date and time (2026-03-01T03:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=load_timezone(timezone))
    if end and len(text.strip()) == len("2026-03-01"):
        moment += timedelta(days=1, seconds=-1)
    return moment.astimezone(UTC)


def backfill(
    store: Store,
    dag_name: str,
    *,
    start: str,
    end: str,
    by: str,
    max_active_runs: int | None = None,
    dry_run: bool = False,
) -> Backfill:
    """Create (or, with `dry_run`, only list) the runs of `dag_name` in [start, end]."""
    if max_active_runs is not None and max_active_runs < 1:
        raise ActionRefusedError("--max-active-runs must be at least 1")
    with store.transaction() as uow:
        record = uow.get_dag(dag_name)
        if record is None or record.deleted:
            raise NotFoundError(f"no DAG named {dag_name!r}; `kubedag status` lists them")
        if record.spec is None:
            raise ActionRefusedError(
                f"DAG {dag_name} has no valid version to run; its file says: {record.error}"
            )
        dag = dag_from_dict(record.spec)
        first = parse_moment(start, timezone=dag.timezone)
        last = parse_moment(end, timezone=dag.timezone, end=True)
        _check_range(dag, first, last)
        trigger = cron_trigger(dag)
        assert trigger is not None
        dates = fire_times(trigger, since=first, until=last, limit=MAX_BACKFILL_RUNS + 1)
        if len(dates) > MAX_BACKFILL_RUNS:
            raise ActionRefusedError(
                f"the range holds more than {MAX_BACKFILL_RUNS} runs of {dag_name}; "
                "backfill it in parts"
            )
        existing = {
            date: run for date in dates if (run := uow.find_run(dag_name, date)) is not None
        }
        created: list[DagRunRecord] = []
        if dry_run:
            return Backfill(dag_name, dates, existing, created)
        params = resolve_params(dag, {})
        for date in dates:
            if date in existing:
                continue
            run, new = queue_dated_run(
                uow,
                record,
                logical_date=date,
                run_type=RunType.BACKFILL,
                params=params,
                message=f"backfill run of {dag_name} for {date.isoformat()} queued by {by}",
                max_active_runs=max_active_runs,
            )
            if new:
                created.append(run)
            else:
                existing[date] = run
        uow.append_event(
            kind="dag-backfilled",
            message=f"backfill of {dag_name} from {_show(first)} to {_show(last)} by {by}: "
            f"{len(created)} runs queued, {len(existing)} dates had a run already",
            dag_name=dag_name,
            data={"runs": [run.id for run in created], "maxActiveRuns": max_active_runs},
        )
    return Backfill(dag_name, dates, existing, created)


@dataclass(frozen=True)
class Progress:
    total: int
    states: dict[str, int]

    @property
    def finished(self) -> int:
        return sum(n for state, n in self.states.items() if DagRunState(state).finished)

    def __str__(self) -> str:
        detail = ", ".join(f"{n} {state}" for state, n in sorted(self.states.items()))
        return f"{self.finished}/{self.total} finished ({detail})"


def progress(store: Store, run_ids: list[int]) -> Progress:
    """How far the runs of a backfill are, by state."""
    states: dict[str, int] = {}
    with store.transaction() as uow:
        for run_id in run_ids:
            run = uow.get_run(run_id)
            if run is not None:
                states[run.state.value] = states.get(run.state.value, 0) + 1
    return Progress(len(run_ids), states)
