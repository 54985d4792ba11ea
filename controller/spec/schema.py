"""The DAG JSON Schema: loaded and compiled once per process, errors turned into Problems.

The schema file (`dag.schema.json`, package data) is the contract editors and the
pre-commit hook read, so it is the source of truth for shape; this module never
repeats it in code. Two traps avoided: slowness, and unreadable messages. The
schema is compiled once per process, never re-read per file, and a valid file
(the common case) is answered by jsonschema-rs, a compiled implementation of the
same draft, so a thousand files validate in about a second; jsonschema, whose
errors carry the failing subschema, is asked only about invalid files. And
jsonschema's raw messages (`'imgae' was unexpected`, a regular expression dumped
at the user), which are rewritten here into messages that name the field, suggest
the likely spelling and point at the key that is wrong rather than its parent.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from controller.spec.loader import Document, Path, field_name
from controller.spec.model import JSON
from controller.spec.problems import Problem

SCHEMA_RESOURCE = "dag.schema.json"


def schema_text() -> str:
    """The schema exactly as shipped, for `kubedag schema`."""
    return resources.files("controller.spec").joinpath(SCHEMA_RESOURCE).read_text("utf-8")


@cache
def schema() -> Mapping[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


def _inline(node: JSON, definitions: Mapping[str, JSON]) -> JSON:
    """`node` with every local `$ref` replaced by its target.

    The schema has no recursive references, and resolving `$ref` is the most expensive
    step of jsonschema's validation, so the validator works on an inlined copy.
    """
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _inline(value, definitions) for key, value in node.items() if key != "$ref"}
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        target = _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {**target, **result}
    return result


@cache
def _gate() -> Any:
    """jsonschema-rs compiled from the same schema: it answers "valid?" a hundred times
    faster than jsonschema, which is then asked for the details only when it is not."""
    return jsonschema_rs.validator_for(dict(schema()))


@cache
def _validator() -> Draft202012Validator:
    original = dict(schema())
    definitions = original.pop("$defs")
    return Draft202012Validator(_inline(original, definitions))


def _subschema(error: ValidationError) -> Mapping[str, Any]:
    return error.schema if isinstance(error.schema, Mapping) else {}


def _listed(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _unknown_field(error: ValidationError, document: Document, path: str) -> Iterator[Problem]:
    known = sorted(_subschema(error).get("properties", {}))
    instance = error.instance if isinstance(error.instance, dict) else {}
    where: Path = tuple(error.absolute_path)
    for key in instance:
        if key in known:
            continue
        at = document.key_at((*where, key))
        guess = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {guess[0]!r}?" if guess else "known fields: " + ", ".join(known)
        yield Problem(
            path, at.line, at.col, field_name((*where, key)), f"unknown field {key!r}; {hint}"
        )


def _message(error: ValidationError) -> str:
    custom = _subschema(error).get("errorMessage")
    if error.validator == "required":
        missing = f"missing required field {_missing(error)!r}"
        return missing if custom is None else f"{missing}: {custom}"
    if error.validator == "const" and custom is None:
        return f"must be {error.validator_value!r}, not {error.instance!r}"
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in _listed(error.validator_value))
        return f"{error.instance!r} is not one of {allowed}"
    if error.validator == "type" and custom is None:
        expected = error.validator_value
        names = " or ".join(expected) if isinstance(expected, list) else expected
        return f"must be {names}, not {_json_type(error.instance)}"
    if custom is not None:
        return f"{error.instance!r} {custom}" if not isinstance(error.instance, dict) else custom
    return str(error.message)


def _missing(error: ValidationError) -> str:
    """The field a `required` error is about: jsonschema raises one error per missing
    field and names it only in its message."""
    present = error.instance if isinstance(error.instance, dict) else {}
    missing = [str(name) for name in _listed(error.validator_value) if name not in present]
    named = (name for name in missing if error.message == f"{name!r} is a required property")
    return next(named, missing[0] if missing else "")


def _json_type(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _specific(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf failures, the sub-error that explains most."""
    if error.context:
        chosen = best_match(error.context)
        if chosen is not None:
            return _specific(chosen)
    return error


def schema_problems(document: Document, *, path: str) -> list[Problem]:
    """Every place where `document` breaks the schema, at the offending node."""
    problems: list[Problem] = []
    if _gate().is_valid(document.value):
        return problems
    for raw in _validator().iter_errors(document.value):
        error = _specific(raw)
        if (
            error.validator == "additionalProperties"
            and _subschema(error).get("additionalProperties") is False
        ):
            problems.extend(_unknown_field(error, document, path))
            continue
        where: Path = tuple(error.absolute_path)
        if "propertyNames" in error.relative_schema_path:
            where = (*where, str(error.instance))
            at = document.key_at(where)
        elif error.validator == "required":
            at = document.key_at(where)
            where = (*where, _missing(error))
        else:
            at = document.at(where)
        problems.append(Problem(path, at.line, at.col, field_name(where), _message(error)))
    return problems
