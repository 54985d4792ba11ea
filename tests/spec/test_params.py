"""Trigger-time parameters are converted to their declared types and checked."""

from __future__ import annotations

import pytest

from controller.spec.model import Dag, Param, ParamType, Task
from controller.spec.params import ParamError, resolve_params


def dag(*params: Param) -> Dag:
    return Dag(name="d", tasks=(Task(name="a", image="x"),), params=params)


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (ParamType.STRING, "07", "07"),
        (ParamType.INTEGER, "-7", -7),
        (ParamType.NUMBER, "0.25", 0.25),
        (ParamType.NUMBER, "3", 3),
        (ParamType.BOOLEAN, "yes", True),
        (ParamType.BOOLEAN, "False", False),
        (ParamType.ARRAY, '["a", 1]', ["a", 1]),
        (ParamType.OBJECT, '{"k": {"n": 1}}', {"k": {"n": 1}}),
    ],
)
def test_values_are_converted_to_the_declared_type(
    kind: ParamType, text: str, value: object
) -> None:
    assert resolve_params(dag(Param("p", kind)), {"p": text}) == {"p": value}


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (ParamType.INTEGER, "3.5", "is not a whole number"),
        (ParamType.NUMBER, "nan", "finite number"),
        (ParamType.BOOLEAN, "maybe", "use true or false"),
        (ParamType.ARRAY, "a,b", "write it as JSON"),
        (ParamType.OBJECT, "[1]", "write it as JSON"),
    ],
)
def test_values_of_the_wrong_type_are_refused(kind: ParamType, text: str, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        resolve_params(dag(Param("p", kind)), {"p": text})


def test_defaults_fill_what_was_not_given() -> None:
    params = dag(Param("days", ParamType.INTEGER, default=7), Param("note", ParamType.STRING))
    assert resolve_params(params, {}) == {"days": 7, "note": None}


def test_value_outside_enum_is_refused() -> None:
    region = Param("region", ParamType.STRING, default="eu", enum=("eu", "us"))
    with pytest.raises(ParamError, match='must be one of "eu", "us", not \'ap\''):
        resolve_params(dag(region), {"region": "ap"})


def test_every_problem_is_listed_at_once() -> None:
    params = dag(Param("who", ParamType.STRING, required=True), Param("n", ParamType.INTEGER))
    with pytest.raises(ParamError) as raised:
        resolve_params(params, {"n": "x", "typo": "1"})
    assert len(raised.value.problems) == 3
    assert "unknown param 'typo' for DAG 'd' (declared: n, who)" in raised.value.problems
    assert "param 'who' is required: give it as who=VALUE" in raised.value.problems
