"""Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1e3`), parsed exactly.

A quantity that does not parse is only discovered when the API server rejects the
pod, hours later in the middle of a run; parsing it at validation time also lets us
compare a request with its limit, which Kubernetes requires to be no larger. Decimal
keeps `0.1` and `100m` equal, which floats would not.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class QuantityError(ValueError):
    pass


def parse_quantity(value: object) -> Decimal:
    """The quantity's value in base units (cores, bytes); raises QuantityError otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"{value!r} is not a quantity: use a value such as 100m or 128Mi")
    return _parse_text(str(value).strip())


@lru_cache(maxsize=1024)
def _parse_text(text: str) -> Decimal:
    """Memoized: every task of a DAG tends to repeat the same few quantities."""
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(
            f"{text!r} is not a Kubernetes quantity: use a number with an optional suffix "
            "such as 100m, 0.5, 128Mi or 2Gi"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation as error:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity") from error
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        number *= Decimal(1024) ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        number = number.scaleb(_DECIMAL[suffix])
    elif suffix:
        number = number.scaleb(int(suffix[1:]))
    if number < 0:
        raise QuantityError(f"{text!r} is negative: resources cannot be negative")
    return number
