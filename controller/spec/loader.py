"""Safe YAML loading that can say the line and column of every value.

`yaml.safe_load` answers with plain values and forgets where they came from, so every
later error could only name a file. It also hides the classic YAML pitfalls: a
duplicate key silently keeps the last value, a "billion laughs" alias bomb expands
until memory runs out, and a second document is dropped without a word.

Here the file is only *composed* into a node tree (libyaml when available: composing
never expands aliases). Our own walk turns nodes into JSON values while it rejects
duplicate keys, counts alias uses and expanded nodes, and refuses tags outside plain
JSON data; the node tree is kept to answer "where is this value?" when a problem
needs it. Timestamps stay the strings they were written as: dates are parsed later,
in the DAG's time zone.

Positions cost nothing extra: `yaml.load` with libyaml's CSafeLoader composes the
same node tree and then constructs values in Python, so a "fast" load without
positions would be slower than this one, not faster.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from controller.spec.model import JSON
from controller.spec.problems import Problem

MAX_FILE_BYTES = 1024 * 1024
"""A DAG file larger than this is refused: real DAGs are a few kilobytes."""

MAX_ALIAS_USES = 100
MAX_NODES = 100_000
MAX_DEPTH = 64

Path = tuple[str | int, ...]

_RESOLVER = Resolver()


@lru_cache(maxsize=4096)
def _resolve(kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
    """The tag of a node without an explicit one, memoized.

    Without path resolvers (safe loading has none), collections always get the default
    tag; a plain scalar's tag is found by a chain of regular expressions, and DAG
    files repeat the same scalars many times.
    """
    if kind is yaml.ScalarNode:
        return str(_RESOLVER.resolve(kind, value, implicit))  # type: ignore[no-untyped-call]
    return _SEQ if kind is yaml.SequenceNode else _MAP


class _Composer(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's composer, with the Python hooks it calls for every node made cheap.

    libyaml composes in C but asks Python, for every node, which tag it has
    (`resolve`) and whether a path resolver applies (`descend_resolver` and
    `ascend_resolver`). Bound on the instance to C callables (a memoized function,
    and two built-ins that do nothing here), these calls create no Python frame;
    that was about a quarter of composing time.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.resolve = _resolve
        self.descend_resolver = operator.is_  # called as (parent, index); result unused
        self.ascend_resolver = tuple  # called as (); result unused


_CONSTRUCTOR = SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_SEQ = _TAG + "seq"
_MAP = _TAG + "map"
_MERGE = _TAG + "merge"
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


def _location(mark: Any) -> Location:
    return Location(mark.line + 1, mark.column + 1)


def _entries(node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    """A mapping's entries in the order that decides a key: explicit ones, then merged."""
    merges: list[yaml.Node] = []
    for key, value in node.value:
        if key.tag == _MERGE:
            merges.extend(value.value if isinstance(value, yaml.SequenceNode) else [value])
        else:
            yield key, value
    for source in merges:
        if isinstance(source, yaml.MappingNode):
            yield from _entries(source)


@dataclass(frozen=True)
class Document:
    """A loaded file: its value, and the node tree that knows where each part was written.

    Positions are looked up in the node tree only when a problem needs one: a valid
    file, the common case, never pays for them.
    """

    value: JSON
    root: yaml.Node

    def _nodes(self, path: Path) -> tuple[yaml.Node | None, yaml.Node, int]:
        """(key node, value node) of the longest prefix of `path` that exists, and its length."""
        key_node: yaml.Node | None = None
        node = self.root
        for depth, part in enumerate(path):
            found: tuple[yaml.Node | None, yaml.Node] | None = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                found = next(((k, v) for k, v in _entries(node) if k.value == part), None)
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                found = (None, node.value[part])
            if found is None:
                return key_node, node, depth
            key_node, node = found
        return key_node, node, len(path)

    def at(self, path: Path) -> Location:
        """Where the value at `path` starts, or its nearest ancestor's when absent."""
        return _location(self._nodes(path)[1].start_mark)

    def key_at(self, path: Path) -> Location:
        """Where the key naming `path` is written (the value's position for list items)."""
        key, value, _ = self._nodes(path)
        return _location((key or value).start_mark)

    def text_column(self, path: Path, offset: int) -> Location:
        """Where character `offset` of the string at `path` is written.

        Exact for single-line strings whose characters map one to one onto the source
        (no escapes, no folding); the string's start otherwise.
        """
        _, node, depth = self._nodes(path)
        start = _location(node.start_mark)
        if depth != len(path) or not isinstance(node, yaml.ScalarNode):
            return start
        quoted = 0 if node.style is None else 1
        width = node.end_mark.column - node.start_mark.column
        if node.start_mark.line != node.end_mark.line or width != len(node.value) + 2 * quoted:
            return start
        return Location(start.line, start.col + quoted + offset)


class _AbortError(Exception):
    def __init__(self, message: str, location: Location) -> None:
        super().__init__(message)
        self.message = message
        self.location = location


class _Builder:
    """Turns a composed node tree into JSON values, refusing YAML's pitfalls on the way.

    Alias uses are counted on collections only: a scalar alias cannot expand. A text
    without '&' has no anchors, so no node can be reached twice: the bookkeeping of
    visited and open nodes (about a third of the walk) is skipped for it.
    """

    def __init__(self, path: str, *, anchored: bool) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self._anchored = anchored
        self._seen: set[int] = set()
        self._open: set[int] = set()
        self._alias_uses = 0
        self._nodes = 0

    def problem(self, mark: Any, message: str) -> None:
        here = _location(mark)
        self.problems.append(Problem(self.path, here.line, here.col, "", message))

    def build(self, node: yaml.Node, depth: int) -> JSON:
        if isinstance(node, yaml.ScalarNode):
            construct = _SCALAR_TAGS.get(node.tag)
            if construct is None:
                self.problem(
                    node.start_mark, f"unsupported YAML tag {node.tag!r}: use plain values"
                )
                return None
            return construct(node)
        anchored = self._anchored
        identity = id(node) if anchored else 0
        aliased = anchored and identity in self._seen
        if aliased and identity in self._open:
            raise _AbortError(
                "an alias refers to the node that contains it (recursive YAML)",
                _location(node.start_mark),
            )
        if depth > MAX_DEPTH:
            raise _AbortError(f"nesting deeper than {MAX_DEPTH} levels", _location(node.start_mark))
        if aliased:
            self._alias_uses += 1
            if self._alias_uses > MAX_ALIAS_USES:
                raise _AbortError(
                    f"more than {MAX_ALIAS_USES} alias uses (an alias bomb?)",
                    _location(node.start_mark),
                )
        self._nodes += len(node.value)
        if self._nodes > MAX_NODES:
            raise _AbortError(
                f"expands to more than {MAX_NODES} nodes (an alias bomb?)",
                _location(node.start_mark),
            )
        if node.tag == _MAP and isinstance(node, yaml.MappingNode):
            walk: Callable[[Any, int], JSON] = self._mapping
        elif node.tag == _SEQ and isinstance(node, yaml.SequenceNode):
            walk = self._sequence
        else:
            if anchored:
                self._seen.add(identity)
            self.problem(node.start_mark, f"unsupported YAML tag {node.tag!r}: use plain mappings")
            return None
        if not anchored:
            return walk(node, depth)
        self._seen.add(identity)
        # An abort leaves the builder unused, so `_open` is cleaned up only on success.
        self._open.add(identity)
        value = walk(node, depth)
        self._open.discard(identity)
        return value

    def _sequence(self, node: yaml.SequenceNode, depth: int) -> list[JSON]:
        return [
            child.value
            if child.__class__ is yaml.ScalarNode and child.tag == _STR
            else self.build(child, depth + 1)
            for child in node.value
        ]

    def _mapping(self, node: yaml.MappingNode, depth: int) -> dict[str, JSON]:
        result: dict[str, JSON] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            tag = key_node.tag
            if tag == _STR and key_node.__class__ is yaml.ScalarNode:
                key: str | None = key_node.value
            elif tag == _MERGE:
                merges.append(value_node)
                continue
            else:
                key = self._key(key_node)
            if key is None:
                continue
            if key in result:
                first = next(k for k, _ in node.value if k.value == key_node.value)
                at = _location(first.start_mark)
                self.problem(
                    key_node.start_mark,
                    f"duplicate key {key!r} (first at line {at.line}, column {at.col}); "
                    "YAML would silently keep only the last one",
                )
                continue
            # Plain strings, most of a DAG file, skip the general (and slower) path.
            if value_node.__class__ is yaml.ScalarNode and value_node.tag == _STR:
                result[key] = value_node.value
            else:
                result[key] = self.build(value_node, depth + 1)
        for merge in merges:
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self.problem(source.start_mark, "'<<' merges only mappings")
                    continue
                merged = self.build(source, depth + 1)
                if isinstance(merged, dict):  # None when its tag was refused, as reported
                    for key, value in merged.items():
                        result.setdefault(key, value)
        return result

    def _key(self, key_node: yaml.Node) -> str | None:
        if not isinstance(key_node, yaml.ScalarNode):
            self.problem(key_node.start_mark, "a mapping key must be a plain string")
            return None
        if key_node.tag == _STR:
            return str(key_node.value)
        key = self.build(key_node, 0)
        self.problem(
            key_node.start_mark,
            f"mapping key {key_node.value!r} is read as {type(key).__name__}, not a string "
            "(YAML turns on/off/yes/no into booleans and digits into numbers); quote it",
        )
        return None


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
    loader = _Composer(text)
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
    builder = _Builder(path, anchored="&" in text)
    try:
        value = builder.build(root, 0)
    except _AbortError as abort:
        return None, [Problem(path, abort.location.line, abort.location.col, "", abort.message)]
    return Document(value, root), builder.problems
