"""Durations, one grammar for DAG files and for the controller's configuration.

A duration is either a number of seconds (``90``, ``1.5``; never negative) or a string
of number-unit parts in the order ``d``, ``h``, ``m``, ``s``, each part at most once
and at least one present: ``30s``, ``10m``, ``1h30m``, ``2d``, ``1d12h``. Only the
seconds part may have a fraction (``1.5s``, ``2m0.5s``); ``1.5h`` is refused because
it reads as one hour and a half to some and as one hour five to others. A string
without a unit (``"10"``) is refused: YAML users who quote a number usually meant a
unit they forgot.

One parser, so a DAG's ``timeout`` and the controller's ``git.interval`` can never
disagree about what ``1h30m`` means.
"""

from __future__ import annotations

import re
from functools import lru_cache

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
_UNIT_SECONDS = (86_400, 3_600, 60)
HINT = "30s, 10m, 1h30m, 2d, 1.5s or a number of seconds"


class DurationError(ValueError):
    """Not a duration; the message says what is and shows examples."""


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises DurationError with a message for users otherwise."""
    if isinstance(value, str):
        return _parse_text(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DurationError(f"{value!r} is not a duration: use {HINT}")
    if value < 0:
        raise DurationError(f"{value} is negative: a duration is 0 or more seconds")
    return float(value)


@lru_cache(maxsize=1024)
def _parse_text(value: str) -> float:
    match = _DURATION.match(value.strip())
    if match is None or not any(match.groups()):
        raise DurationError(
            f"{value!r} is not a duration: use number-unit parts in the order d, h, m, s "
            f"(only seconds may have a fraction), or a number of seconds: {HINT}"
        )
    days, hours, minutes, seconds = match.groups()
    whole = sum(
        int(part) * unit
        for part, unit in zip((days, hours, minutes), _UNIT_SECONDS, strict=True)
        if part
    )
    return whole + (float(seconds) if seconds else 0.0)
