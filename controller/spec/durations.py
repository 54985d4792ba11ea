"""Durations as DAG files write them: `30s`, `10m`, `1h30m`, `2d`, or whole seconds.

One parser for the validator and for everything that turns a duration into seconds
(timeouts become activeDeadlineSeconds, backoff delays become retry times), so the
two can never disagree about what `1h30m` means.
"""

from __future__ import annotations

import re
from functools import lru_cache

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNIT_SECONDS = (86_400, 3_600, 60, 1)


class DurationError(ValueError):
    pass


def parse_duration(value: object) -> int:
    """Seconds in `value`; raises DurationError with a message for users otherwise."""
    if isinstance(value, str):
        return _parse_text(value)
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration: use 30s, 10m, 1h30m, 2d or seconds")
    if isinstance(value, int):
        if value < 0:
            raise DurationError(f"{value} is negative: a duration is 0 or more seconds")
        return value
    raise DurationError(f"{value!r} is not a duration: use 30s, 10m, 1h30m, 2d or seconds")


@lru_cache(maxsize=1024)
def _parse_text(value: str) -> int:
    match = _DURATION.match(value.strip())
    if match and any(match.groups()):
        return sum(
            int(part) * unit
            for part, unit in zip(match.groups(), _UNIT_SECONDS, strict=True)
            if part
        )
    raise DurationError(
        f"{value!r} is not a duration: use number-unit parts in the order d, h, m, s "
        "(30s, 10m, 1h30m, 2d) or whole seconds"
    )
