"""Safe YAML loading that keeps the line and column of every node.

`yaml.safe_load` answers with plain values and forgets where they came from, so every
later error could only name a file. It also hides the classic YAML pitfalls: a
duplicate key silently keeps the last value, a "billion laughs" alias bomb expands
until memory runs out, and a second document is dropped without a word.

Here the file is only *composed* into a node tree (libyaml when available: composing
never expands aliases), and our own walk turns nodes into JSON values while it
records positions, rejects duplicate keys, counts alias uses and expanded nodes, and
refuses tags outside plain JSON data. Timestamps stay the strings they were written
as: dates are parsed later, in the DAG's time zone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from controller.spec.model import JSON
from controller.spec.problems import Problem

MAX_FILE_BYTES = 1024 * 1024
"""A DAG file larger than this is refused: real DAGs are a few kilobytes."""

MAX_ALIAS_USES = 100
MAX_NODES = 100_000
MAX_DEPTH = 64

Path = tuple[str | int, ...]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCTOR = SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS: Mapping[str, Callable[[yaml.ScalarNode], JSON]] = {
    _TAG + "null": lambda node: None,
    _TAG + "bool": lambda node: _CONSTRUCTOR.construct_yaml_bool(node),
    _TAG + "int": lambda node: _CONSTRUCTOR.construct_yaml_int(node),
    _TAG + "float": lambda node: _CONSTRUCTOR.construct_yaml_float(node),
    _TAG + "str": lambda node: node.value,
    _TAG + "timestamp": lambda node: node.value,
}


@dataclass(frozen=True)
class Location:
    line: int
    col: int


@dataclass(frozen=True)
class Document:
    """A loaded file: its value and where each part of it was written."""

    value: JSON
    values: Mapping[Path, Location] = field(default_factory=dict)
    keys: Mapping[Path, Location] = field(default_factory=dict)
    text_columns: Mapping[Path, Location] = field(default_factory=dict)
    """For single-line strings whose characters map one to one onto the source: where
    the first character is, so a problem inside the string can point at its column."""

    def at(self, path: Path) -> Location:
        """Where the value at `path` starts, or its nearest ancestor's when absent."""
        while path:
            found = self.values.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self.values.get((), Location(1, 1))

    def key_at(self, path: Path) -> Location:
        """Where the key naming `path` is written (the value's position for list items)."""
        return self.keys.get(path) or self.at(path)


class _AbortError(Exception):
    def __init__(self, message: str, location: Location) -> None:
        super().__init__(message)
        self.message = message
        self.location = location


def _location(mark: Any) -> Location:
    return Location(mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed node tree into JSON values, recording positions and pitfalls."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.values: dict[Path, Location] = {}
        self.keys: dict[Path, Location] = {}
        self.text_columns: dict[Path, Location] = {}
        self.problems: list[Problem] = []
        self._seen: set[int] = set()
        self._open: set[int] = set()
        self._alias_uses = 0
        self._nodes = 0

    def problem(self, location: Location, message: str, where: Path = ()) -> None:
        self.problems.append(
            Problem(self.path, location.line, location.col, field_name(where), message)
        )

    def build(self, node: yaml.Node, where: Path, depth: int) -> JSON:
        here = _location(node.start_mark)
        if id(node) in self._open:
            raise _AbortError("an alias refers to the node that contains it (recursive YAML)", here)
        if depth > MAX_DEPTH:
            raise _AbortError(f"nesting deeper than {MAX_DEPTH} levels", here)
        if id(node) in self._seen:
            self._alias_uses += 1
            if self._alias_uses > MAX_ALIAS_USES:
                raise _AbortError(f"more than {MAX_ALIAS_USES} alias uses (an alias bomb?)", here)
        self._seen.add(id(node))
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _AbortError(f"expands to more than {MAX_NODES} nodes (an alias bomb?)", here)
        self.values[where] = here
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, where, here)
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _TAG + "seq":
                return [
                    self.build(child, (*where, index), depth + 1)
                    for index, child in enumerate(node.value)
                ]
            if isinstance(node, yaml.MappingNode) and node.tag == _TAG + "map":
                return self._mapping(node, where, depth)
        finally:
            self._open.discard(id(node))
        self.problem(here, f"unsupported YAML tag {node.tag!r}: use plain mappings", where)
        return None

    def _scalar(self, node: yaml.ScalarNode, where: Path, here: Location) -> JSON:
        construct = _SCALAR_TAGS.get(node.tag)
        if construct is None:
            self.problem(here, f"unsupported YAML tag {node.tag!r}: use plain values", where)
            return None
        value = construct(node)
        if isinstance(value, str) and node.start_mark.line == node.end_mark.line:
            quoted = 0 if node.style is None else 1
            width = node.end_mark.column - node.start_mark.column
            if width == len(value) + 2 * quoted:
                self.text_columns[where] = Location(here.line, here.col + quoted)
        return value

    def _mapping(self, node: yaml.MappingNode, where: Path, depth: int) -> dict[str, JSON]:
        result: dict[str, JSON] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            key_at = _location(key_node.start_mark)
            if key_node.tag == _TAG + "merge":
                merges.append(value_node)
                continue
            key = self._key(key_node, where, key_at)
            if key is None:
                continue
            if key in result:
                first = self.keys[(*where, key)]
                self.problem(
                    key_at,
                    f"duplicate key {key!r} (first at line {first.line}, column {first.col}); "
                    "YAML would silently keep only the last one",
                    (*where, key),
                )
                continue
            self.keys[(*where, key)] = key_at
            result[key] = self.build(value_node, (*where, key), depth + 1)
        for merge in merges:
            self._merge(merge, result, where, depth)
        return result

    def _key(self, key_node: yaml.Node, where: Path, key_at: Location) -> str | None:
        if not isinstance(key_node, yaml.ScalarNode):
            self.problem(key_at, "a mapping key must be a plain string", where)
            return None
        key = self._scalar(key_node, where, key_at)
        if isinstance(key, str):
            return key
        self.problem(
            key_at,
            f"mapping key {key_node.value!r} is read as {type(key).__name__}, not a string "
            "(YAML turns on/off/yes/no into booleans and digits into numbers); quote it",
            where,
        )
        return None

    def _merge(self, merge: yaml.Node, into: dict[str, JSON], where: Path, depth: int) -> None:
        sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
        for index, source in enumerate(sources):
            if not isinstance(source, yaml.MappingNode):
                self.problem(_location(source.start_mark), "'<<' merges only mappings", where)
                continue
            # Built under a scratch path so that its positions cannot overwrite those of
            # the keys written explicitly, which win over merged ones.
            scratch = (*where, "<<", index)
            merged = self.build(source, scratch, depth + 1)
            for key, value in merged.items():
                if key not in into:
                    into[key] = value
                    self._move_positions((*scratch, key), (*where, key))

    def _move_positions(self, source: Path, target: Path) -> None:
        cut = len(source)
        for table in (self.values, self.keys, self.text_columns):
            for path in [p for p in table if p[:cut] == source]:
                table[(*target, *path[cut:])] = table.pop(path)


def field_name(path: Path) -> str:
    """`spec.tasks[2].image` for ("spec", "tasks", 2, "image")."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _decode(data: bytes, path: str) -> tuple[str | None, list[Problem]]:
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as error:
        before = data[: error.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        message = f"not UTF-8: invalid byte 0x{data[error.start]:02x}; save the file as UTF-8"
        return None, [Problem(path, line, col, "", message)]


def load_document(data: bytes, *, path: str) -> tuple[Document | None, list[Problem]]:
    """Load one YAML document that must be a mapping. Problems are returned, not raised.

    The Document is returned also when there are problems that leave the value usable
    (duplicate keys, odd tags), so that later checks can still report theirs.
    """
    if len(data) > MAX_FILE_BYTES:
        message = f"file is {len(data)} bytes, more than the limit of {MAX_FILE_BYTES}"
        return None, [Problem(path, 1, 1, "", message)]
    text, problems = _decode(data, path)
    if text is None:
        return None, problems
    loader = _Loader(text)
    try:
        if not loader.check_node():
            return None, [Problem(path, 1, 1, "", "empty file: expected a DAG mapping")]
        root = loader.get_node()
        if loader.check_node():
            second = _location(loader.get_node().start_mark)
            message = "more than one YAML document: a DAG file holds exactly one"
            return None, [Problem(path, second.line, second.col, "", message)]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = _location(mark) if mark is not None else Location(1, 1)
        message = f"YAML syntax error: {error.problem or error.context}"
        return None, [Problem(path, where.line, where.col, "", message)]
    except yaml.YAMLError as error:
        return None, [Problem(path, 1, 1, "", f"YAML error: {error}")]
    finally:
        loader.dispose()
    if not isinstance(root, yaml.MappingNode):
        where = _location(root.start_mark)
        message = "a DAG file must be a mapping (apiVersion, kind, metadata, spec)"
        return None, [Problem(path, where.line, where.col, "", message)]
    builder = _Builder(path)
    try:
        value = builder.build(root, (), 0)
    except _AbortError as abort:
        return None, [Problem(path, abort.location.line, abort.location.col, "", abort.message)]
    document = Document(value, builder.values, builder.keys, builder.text_columns)
    return document, builder.problems
