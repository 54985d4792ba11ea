"""Which scheduled runs of a DAG are due: the scheduler's time logic, free of threads and I/O.

The scheduler asks one question on every fire, at start, and whenever the DAGs change:
given the latest run it knows of and the time now, which logical dates are due? Asking
that, rather than "create a run for the fire that just happened", makes the answer the
same whether the controller fired on time, was down for a week, or races a second
controller: the due dates are a function of (DAG, last run, now), and creating them is
idempotent in the store.

Times come from APScheduler's CronTrigger (the same trigger the validator shows), read
in the DAG's time zone, so DST days fire as that zone's wall clock says: a time that
does not exist on the spring-forward day fires once, at the same offset from midnight in
UTC terms (02:30 in Europe/Berlin becomes 01:30 UTC); a time that occurs twice on the
fall-back day fires twice. Two traps avoided: stepping from a fire time in local wall
time (aware datetime arithmetic is wall-clock arithmetic, which lands back inside the
repeated hour), and sub-second probes (the trigger rounds up to whole seconds). Every
probe is in UTC, one second after the previous fire.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from controller.spec.model import Dag
from controller.spec.schedule import cron_trigger, next_fire

DEFAULT_MAX_CATCHUP = 100
_LOOKBACKS = tuple(timedelta(days=days) for days in (1, 8, 32, 367, 3700))


def fire_times(
    trigger: CronTrigger, *, since: datetime, until: datetime, limit: int
) -> list[datetime]:
    """Up to `limit` fire times in [since, until], oldest first, in UTC."""
    times: list[datetime] = []
    moment = next_fire(trigger, since - timedelta(seconds=1))
    while moment is not None and moment <= until and len(times) < limit:
        times.append(moment)
        moment = next_fire(trigger, moment)
    return times


def due_runs(
    dag: Dag,
    *,
    last_logical_date: datetime | None,
    now: datetime,
    catchup: bool,
    max_catchup: int = DEFAULT_MAX_CATCHUP,
) -> list[datetime]:
    """The logical dates (UTC) to create runs for now, oldest first.

    Only fire times after `last_logical_date` count, and only from the DAG's startDate
    on. With catchup, the missed dates oldest first, at most `max_catchup` per call (the
    next call continues from the newest created); without, only the latest. A DAG with
    neither a run nor a startDate has no history to catch up: its latest due date only.
    """
    trigger = cron_trigger(dag)
    if trigger is None:
        return []
    if last_logical_date is not None:
        since = last_logical_date.astimezone(UTC) + timedelta(seconds=1)
    elif dag.start_date is not None:
        since = dag.start_date.astimezone(UTC)
    else:
        since, catchup = datetime.min.replace(tzinfo=UTC), False
    now = now.astimezone(UTC)
    if since > now:
        return []
    if catchup:
        return fire_times(trigger, since=since, until=now, limit=max_catchup)
    return _latest(trigger, since=since, now=now)


def _latest(trigger: CronTrigger, *, since: datetime, now: datetime) -> list[datetime]:
    """The newest fire time in [since, now], looking back in growing windows."""
    for lookback in _LOOKBACKS:
        start = max(since, now - lookback)
        latest: datetime | None = None
        moment = next_fire(trigger, start - timedelta(seconds=1))
        while moment is not None and moment <= now:
            latest = moment
            moment = next_fire(trigger, moment)
        if latest is not None or start == since:
            return [] if latest is None else [latest]
    return []
