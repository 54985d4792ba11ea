"""Properties of the validator over generated DAGs and garbage input."""

from __future__ import annotations

import itertools
import re

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from controller.spec.loader import load_document
from controller.spec.schema import _gate, _validator
from controller.spec.validate import check_file

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def dag_documents(draw: st.DrawFn) -> dict[str, object]:
    """A valid DAG: tasks depend only on earlier tasks and read only upstream results."""
    names = draw(st.lists(NAMES, min_size=1, max_size=12, unique=True))
    params = draw(st.lists(NAMES, max_size=3, unique=True))
    tasks: list[dict[str, object]] = []
    for index, name in enumerate(names):
        upstream = draw(st.lists(st.sampled_from(names[:index]), unique=True)) if index else []
        task: dict[str, object] = {"name": name, "image": "python:3.12-slim"}
        command = ["python3", "job.py"]
        command += [f"{{{{ tasks.{u}.result }}}}" for u in upstream]
        command += [f"{{{{ params.{p} }}}}" for p in params]
        if upstream:
            task["dependsOn"] = upstream
        if draw(st.booleans()):
            task["withItems"] = draw(st.lists(NAMES, min_size=1, max_size=3))
            command.append("{{ item }}")
        task["command"] = command
        task["timeout"] = draw(st.sampled_from(["30s", "10m", "1h30m", 60]))
        tasks.append(task)
    spec: dict[str, object] = {
        "tasks": draw(st.permutations(tasks)),
        "params": {p: {"type": "string", "default": "x"} for p in params},
    }
    if draw(st.booleans()):
        spec["schedule"] = draw(st.sampled_from(["@daily", "*/5 * * * *", "0 3 * * 1-5"]))
    return {
        "apiVersion": "kubedag.io/v1",
        "kind": "DAG",
        "metadata": {"name": draw(NAMES)},
        "spec": spec,
    }


def _dump(document: object) -> bytes:
    return yaml.safe_dump(document, sort_keys=False).encode("utf-8")


@SETTINGS
@given(dag_documents())
def test_generated_valid_dags_validate(document: dict[str, object]) -> None:
    result = check_file(_dump(document), path="dag.yaml")
    assert result.problems == []
    assert result.loaded is not None


@SETTINGS
@given(dag_documents(), st.data())
def test_an_injected_cycle_is_reported_and_named(
    document: dict[str, object], data: st.DataObject
) -> None:
    tasks = document["spec"]["tasks"]  # type: ignore[index]
    names = [task["name"] for task in tasks]
    assume(len(names) >= 2)
    cycle = data.draw(st.lists(st.sampled_from(names), min_size=2, unique=True), label="cycle")
    for position, name in enumerate(cycle):
        task = next(t for t in tasks if t["name"] == name)
        needed = cycle[position - 1]
        task["dependsOn"] = [d for d in task.get("dependsOn", []) if d != needed] + [needed]
    problems = check_file(_dump(document), path="dag.yaml").problems
    messages = [p.message for p in problems if p.message.startswith("dependency cycle: ")]
    assert messages, problems
    for message in messages:
        order = message.removeprefix("dependency cycle: ").split(" -> ")
        assert order[0] == order[-1]
        for before, after in itertools.pairwise(order):
            task = next(t for t in tasks if t["name"] == after)
            assert before in task["dependsOn"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    check_file(b"kind: DAG\n" + data, path="noise.yaml")


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "apiVersion": YAML_VALUES,
            "metadata": YAML_VALUES,
            "spec": st.fixed_dictionaries(
                {},
                optional={
                    "tasks": st.lists(YAML_VALUES, max_size=3),
                    "params": YAML_VALUES,
                    "defaults": YAML_VALUES,
                    "schedule": YAML_VALUES,
                    "timezone": YAML_VALUES,
                    "startDate": YAML_VALUES,
                },
            ),
        },
    )
)
def test_random_yaml_documents_never_raise(document: dict[str, object]) -> None:
    check_file(_dump({"kind": "DAG", **document}), path="random.yaml")


@settings(max_examples=200, deadline=None)
@given(dag_documents(), st.sampled_from(["metadata", "spec", "tasks", "timeout"]), YAML_VALUES)
def test_the_fast_schema_gate_agrees_with_jsonschema(
    document: dict[str, object], where: str, junk: object
) -> None:
    spec = document["spec"]
    assert isinstance(spec, dict)
    if where in ("metadata", "spec"):
        document[where] = junk
    elif where == "tasks":
        spec["tasks"] = [*spec["tasks"], junk]
    else:
        spec["tasks"][0]["timeout"] = junk
    detailed = not any(True for _ in _validator().iter_errors(document))
    assert _gate().is_valid(document) == detailed


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), YAML_VALUES, max_size=6))
def test_loaded_values_are_what_yaml_wrote(document: dict[str, object]) -> None:
    document = {"kind": "DAG", **document}
    loaded, problems = load_document(_dump(document), path="values.yaml")
    assert problems == []
    assert loaded is not None
    assert loaded.value == document


_BLOCK_KEY = re.compile(r"^( *)([A-Za-z][A-Za-z0-9_-]*):(?: .*)?$")


@SETTINGS
@given(dag_documents(), st.data())
def test_a_repeated_key_is_reported_at_the_repetition_wherever_it_is(
    document: dict[str, object], data: st.DataObject
) -> None:
    lines = _dump(document).decode().splitlines()
    keys = [index for index, line in enumerate(lines) if _BLOCK_KEY.match(line)]
    index = data.draw(st.sampled_from(keys), label="line")
    match = _BLOCK_KEY.match(lines[index])
    assert match is not None
    indent, key = match.groups()
    lines.insert(index + 1, lines[index])
    problems = check_file("\n".join(lines).encode(), path="dag.yaml").problems
    first = f"first at line {index + 1}, column {len(indent) + 1}"
    assert any(
        (problem.line, problem.col) == (index + 2, len(indent) + 1)
        and problem.message.startswith(f"duplicate key {key!r} ({first})")
        for problem in problems
    ), problems


@SETTINGS
@given(dag_documents())
def test_a_text_with_and_without_anchors_loads_the_same_values(document: dict[str, object]) -> None:
    text = _dump(document)
    plain, _ = load_document(text, path="plain.yaml")
    anchored, _ = load_document(text + b"# an '&' turns on the alias bookkeeping\n", path="a.yaml")
    assert plain is not None
    assert anchored is not None
    assert plain.value == anchored.value == document
