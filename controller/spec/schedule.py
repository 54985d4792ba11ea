"""Cron schedules, read the way the scheduler will fire them.

APScheduler's CronTrigger is the one implementation of cron semantics in kubedag:
the validator, `kubedag show` and the scheduler all build their trigger with
`cron_trigger`, so a schedule that validates is a schedule that fires as shown.

The trap it avoids: APScheduler 3 numbers weekdays from Monday = 0, while crontab
(and every user) numbers them from Sunday = 0. `from_crontab` passes the numbers
through unchanged, so "0 9 * * 1" would fire on Tuesdays. We expand the day-of-week
field ourselves and hand APScheduler weekday *names*. And where classic cron fires
when *either* day-of-month or day-of-week matches, APScheduler needs both; rather
than fire on days nobody expected, a schedule restricting both is refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from controller.spec.model import Dag

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_PART = re.compile(r"^(?P<range>\*|[0-7a-z]+(?:-[0-7a-z]+)?)(?:/(?P<step>\d+))?$")


class ScheduleError(ValueError):
    pass


def to_crontab(schedule: str) -> str:
    """The 5 cron fields of `schedule` (presets expanded, whitespace normalized)."""
    text = " ".join(schedule.split())
    if text.startswith("@"):
        if text not in PRESETS:
            raise ScheduleError(
                f"unknown preset {text!r}: use one of " + ", ".join(sorted(PRESETS))
            )
        return PRESETS[text]
    if len(text.split()) != 5:
        raise ScheduleError(
            f"{text!r} has {len(text.split())} fields; cron needs 5: "
            "minute hour day-of-month month day-of-week"
        )
    return text


def load_timezone(name: str) -> ZoneInfo:
    """The IANA zone `name`; raises ScheduleError naming it otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin"
        ) from error


def parse_instant(text: str, zone: tzinfo) -> datetime:
    """An RFC 3339 date-time or a date; without an offset, read in `zone`."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ScheduleError(
            f"{text!r} is not a date-time: use RFC 3339 such as 2026-01-01T00:00:00Z "
            "or a date such as 2026-01-01"
        ) from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _weekday(token: str) -> int:
    if token.isdigit():
        number = int(token)
        if number > 7:
            raise ScheduleError(f"day-of-week {number} is out of range 0-7 (0 and 7 = Sunday)")
        return number % 7
    if token[:3] in _WEEKDAYS and len(token) == 3:
        return _WEEKDAYS.index(token)
    raise ScheduleError(f"unknown day-of-week {token!r}: use 0-7 or sun..sat")


def _weekdays(field: str) -> str:
    """The crontab day-of-week field as APScheduler weekday names (Sunday = 0 = 7)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        match = _DOW_PART.match(part)
        if match is None:
            raise ScheduleError(f"cannot read day-of-week {part!r}")
        span, step = match["range"], int(match["step"] or 1)
        if step < 1:
            raise ScheduleError(f"day-of-week step in {part!r} must be at least 1")
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first = _weekday(low)
            last = (7 if high == "7" else _weekday(high)) if high else first
            if high and match["step"] is None and last < first:
                raise ScheduleError(f"day-of-week range {part!r} runs backwards")
            if not high and match["step"] is not None:
                last = 6
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def crontab_trigger(
    schedule: str,
    *,
    timezone: tzinfo,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
) -> CronTrigger:
    """A CronTrigger that fires as crontab would read `schedule`; ScheduleError otherwise."""
    minute, hour, day, month, day_of_week = to_crontab(schedule).split()
    if day != "*" and day_of_week != "*":
        raise ScheduleError(
            f"{schedule!r} restricts both day-of-month and day-of-week: crontab fires when "
            "either matches, kubedag only when both do; restrict only one of them"
        )
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekdays(day_of_week),
            timezone=timezone,
            start_date=start_date,
            end_date=end_date,
        )
    except ValueError as error:
        raise ScheduleError(f"invalid cron expression {schedule!r}: {error}") from error


def cron_trigger(dag: Dag) -> CronTrigger | None:
    """The trigger of a scheduled DAG (None for a manual one), with its start/end dates."""
    if dag.schedule is None:
        return None
    return crontab_trigger(
        dag.schedule,
        timezone=load_timezone(dag.timezone),
        start_date=dag.start_date,
        end_date=dag.end_date,
    )


_MAX_PROBES = 32


def next_fire(trigger: CronTrigger, after: datetime) -> datetime | None:
    """The first fire time strictly after `after`, in UTC (None past the end date).

    Two traps avoided: stepping from a fire time in local wall time (aware datetime
    arithmetic is wall-clock arithmetic, which lands back inside the hour a fall-back day
    repeats), and sub-second probes (the trigger rounds up to whole seconds, so a 1 us
    step can answer the same fire again). Every probe is in UTC, at least a second on.
    """
    after = after.astimezone(UTC)
    step = timedelta(seconds=1)
    for _ in range(_MAX_PROBES):
        found: datetime | None = trigger.get_next_fire_time(None, after + step)
        if found is None:
            return None
        fire = found.astimezone(UTC)
        if fire > after:
            return fire
        step *= 2
    raise RuntimeError(f"the cron trigger {trigger} does not move past {after.isoformat()}")


def next_fire_times(dag: Dag, *, after: datetime, count: int) -> list[datetime]:
    """The next `count` scheduled times strictly after `after`, in the DAG's time zone.

    Fewer (or none) when the DAG is manual or its endDate comes first.
    """
    trigger = cron_trigger(dag)
    if trigger is None:
        return []
    zone = load_timezone(dag.timezone)
    times: list[datetime] = []
    moment: datetime | None = after if after.tzinfo is not None else after.replace(tzinfo=zone)
    while len(times) < count and moment is not None:
        moment = next_fire(trigger, moment)
        if moment is not None:
            times.append(moment.astimezone(zone))
    return times
