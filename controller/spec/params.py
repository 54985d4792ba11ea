"""Run parameters: typed values from `key=value` strings, checked against the DAG.

A trigger arrives as strings (`kubedag trigger daily-sales region=us days=7`), but a
template reads `{{ params.days }}` as the declared type, and a run that starts with a
parameter nobody declared (a typo) would silently use the default. So values are
converted to their declared type, unknown names and values outside `enum` are
refused, and every missing required parameter is named at once.

`matches_type` is shared with the validator, which checks declared defaults and enum
values by the same rule (a boolean is never an integer, though Python says it is).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from controller.spec.model import JSON, Dag, Param, ParamType

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class ParamError(ValueError):
    """Parameters that cannot start a run; `problems` lists each one for the user."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


def matches_type(value: JSON, param_type: ParamType) -> bool:
    if param_type is ParamType.STRING:
        return isinstance(value, str)
    if param_type is ParamType.BOOLEAN:
        return isinstance(value, bool)
    if param_type is ParamType.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if param_type is ParamType.NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if param_type is ParamType.ARRAY:
        return isinstance(value, list)
    return isinstance(value, dict)


def coerce(text: str, param: Param) -> JSON:
    """`text` as a value of the param's type; ValueError with a message otherwise."""
    kind = param.type
    if kind is ParamType.STRING:
        return text
    if kind is ParamType.BOOLEAN:
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ValueError(f"param {param.name!r} is a boolean: use true or false, not {text!r}")
    if kind is ParamType.INTEGER:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(
                f"param {param.name!r} is an integer: {text!r} is not a whole number"
            ) from None
    if kind is ParamType.NUMBER:
        try:
            number = float(text.strip())
        except ValueError:
            raise ValueError(f"param {param.name!r} is a number: {text!r} is not one") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"param {param.name!r} must be a finite number, not {text!r}")
        return int(number) if number.is_integer() and "." not in text else number
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not matches_type(value, kind):
        raise ValueError(
            f"param {param.name!r} is an {kind.value}: write it as JSON, "
            + ('e.g. \'["a", "b"]\'' if kind is ParamType.ARRAY else "e.g. '{\"k\": 1}'")
        )
    return value


def resolve_params(dag: Dag, given: Mapping[str, str]) -> dict[str, JSON]:
    """Every declared param's value for a run: given ones converted, defaults filled.

    A param that is neither given, required nor defaulted is None (templates render it
    as `null`). Raises ParamError listing every problem.
    """
    declared = {param.name: param for param in dag.params}
    problems: list[str] = []
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            problems.append(f"unknown param {name!r} for DAG {dag.name!r} (declared: {known})")
    values: dict[str, JSON] = {}
    for name, param in declared.items():
        if name in given:
            try:
                value = coerce(given[name], param)
            except ValueError as error:
                problems.append(str(error))
                continue
            if param.enum is not None and value not in param.enum:
                allowed = ", ".join(json.dumps(option) for option in param.enum)
                problems.append(f"param {name!r} must be one of {allowed}, not {given[name]!r}")
                continue
            values[name] = value
        elif param.required and param.default is None:
            problems.append(f"param {name!r} is required: give it as {name}=VALUE")
        else:
            values[name] = param.default
    if problems:
        raise ParamError(problems)
    return values
