"""Validate a repository of DAG files: the one entry point of the CLI, hook and controller.

The pre-commit hook, `kubedag validate` and the controller's git-sync all call
`validate_paths`, so a file that passes locally passes in the cluster. Files are DAGs
when they declare `kind: DAG` (or a kubedag.io apiVersion); other YAML in the tree,
such as Kubernetes manifests or CI configuration, is ignored rather than reported.
One bad file never hides another's problems or blocks the valid DAGs: the report
holds both, and only the rule that spans files (unique DAG names) ties them together.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller.spec.loader import Location, load_document
from controller.spec.model import Dag
from controller.spec.podpolicy import PodPolicy, policy_problems
from controller.spec.problems import Problem
from controller.spec.resolve import content_hash, resolve_dag
from controller.spec.schema import schema_problems
from controller.spec.semantics import semantic_problems

DAG_SUFFIXES = (".yaml", ".yml")
_DECLARES_DAG = re.compile(
    rb"""(?mi)^(?:kind\s*:\s*["']?dag["']?\s*(?:\#.*)?\r?$"""
    rb"""|apiVersion\s*:\s*["']?kubedag\.io/)"""
    rb"""|["']kind["']\s*:\s*["']DAG["']"""
)


@dataclass(frozen=True)
class LoadedDag:
    path: str
    """As reported in problems (relative to `root` when given)."""
    dag: Dag
    """Resolved: defaults merged."""
    content_hash: str
    """sha256 hex of the canonical JSON of dag_to_dict(dag)."""


@dataclass(frozen=True)
class ValidationReport:
    dags: tuple[LoadedDag, ...]
    """The valid DAGs."""
    problems: tuple[Problem, ...]
    """Sorted by path, line, col."""
    files_checked: int
    names_by_path: Mapping[str, str]
    """metadata.name of every DAG file whose name could be read, valid or not."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def task_count(self) -> int:
        return sum(len(loaded.dag.tasks) for loaded in self.dags)


def declares_dag(data: bytes) -> bool:
    """Whether a YAML file says it is a DAG (checked on bytes: it may not even decode)."""
    return _DECLARES_DAG.search(data) is not None


def _walk(directory: Path) -> Iterator[tuple[Path, list[str]]]:
    """Every directory under `directory`, in order, with the names of its DAG files."""
    for current, subdirectories, files in os.walk(directory):
        # Hidden directories (.git, .venv, ...) hold no DAGs and can be huge.
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        yield Path(current), sorted(name for name in files if name.endswith(DAG_SUFFIXES))


def _shown(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path)
    return Path(os.path.relpath(path, root)).as_posix()


@dataclass
class FileReport:
    """What one DAG file came to: its problems, its name, and its DAG when valid."""

    path: str
    problems: list[Problem]
    name: str | None = None
    name_at: Location = field(default_factory=lambda: Location(1, 1))
    loaded: LoadedDag | None = None


def check_file(data: bytes, *, path: str, policy: PodPolicy | None = None) -> FileReport:
    """Every problem of one DAG file's bytes, and the resolved DAG when there are none.

    For callers that hold a file's bytes rather than a path (a blob read from git);
    the rule that spans files, unique DAG names, is validate_paths' alone. With a
    `policy` (the controller's), the pod fields it refuses are problems too.
    """
    return _check_file(data, path, policy)


def _check_file(data: bytes, path: str, policy: PodPolicy | None) -> FileReport:
    document, problems = load_document(data, path=path)
    if document is None:
        return FileReport(path, problems)
    semantic = semantic_problems(document, path=path)
    # Where a semantic rule explains a node, its message is the more specific one.
    explained = {(p.line, p.col, p.field) for p in semantic}
    problems += [
        problem
        for problem in schema_problems(document, path=path)
        if (problem.line, problem.col, problem.field) not in explained
    ]
    problems += semantic
    if policy is not None:
        problems += policy_problems(document, path=path, policy=policy)
    metadata = document.value.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    result = FileReport(path, problems, name if isinstance(name, str) else None)
    if result.name is not None:
        result.name_at = document.at(("metadata", "name"))
    if not problems:
        dag = resolve_dag(document.value)
        result.loaded = LoadedDag(path, dag, content_hash(dag))
    return result


def _files(paths: Sequence[str | Path], root: Path | None) -> Iterator[tuple[Path, str, str]]:
    """Each file to check: its path, its name in problems, and its real path.

    In a directory the slow parts (resolving symbolic links, the path relative to the
    root) are computed once for the directory; a file resolves on its own only when
    it is a link itself.
    """
    for given in paths:
        path = Path(given)
        if root is not None and not path.is_absolute():
            path = root / path
        if not path.is_dir():
            shown = _shown(path, root) if root is not None else str(given)
            yield path, shown, os.path.realpath(path)
            continue
        for folder, names in _walk(path):
            real_folder = os.path.realpath(folder)
            shown_folder = _shown(folder, root)
            for name in names:
                found = folder / name
                real = (
                    os.path.realpath(found)
                    if found.is_symlink()
                    else os.path.join(real_folder, name)
                )
                if root is None:
                    yield found, str(found), real
                else:
                    yield found, name if shown_folder == "." else f"{shown_folder}/{name}", real


def _duplicate_names(results: list[FileReport]) -> None:
    by_name: dict[str, list[FileReport]] = defaultdict(list)
    for result in results:
        if result.name is not None:
            by_name[result.name].append(result)
    for name, owners in by_name.items():
        if len(owners) < 2:
            continue
        for owner in owners:
            others = ", ".join(
                f"{other.path}:{other.name_at.line}" for other in owners if other is not owner
            )
            message = f"DAG name {name!r} is also used by {others}; names must be unique"
            at = owner.name_at
            owner.problems.append(Problem(owner.path, at.line, at.col, "metadata.name", message))
            owner.loaded = None


def _check_files(
    paths: Sequence[str | Path], root: Path | None, policy: PodPolicy | None
) -> tuple[list[FileReport], int]:
    """The report of every file in `paths`, and how many of them are DAG files."""
    results: list[FileReport] = []
    seen: set[str] = set()
    checked = 0
    for file, shown, real in _files(paths, root):
        if real in seen:
            continue
        seen.add(real)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            results.append(FileReport(shown, [Problem(shown, 1, 1, "", "no such file")]))
            continue
        except OSError as error:
            message = f"cannot read: {error.strerror or error}"
            results.append(FileReport(shown, [Problem(shown, 1, 1, "", message)]))
            continue
        if declares_dag(data):
            checked += 1
            results.append(_check_file(data, shown, policy))
    return results, checked


def validate_paths(
    paths: Sequence[str | Path], *, root: Path | None = None, policy: PodPolicy | None = None
) -> ValidationReport:
    """Validate the DAG files in `paths` (files or directories, recursively).

    Relative paths are taken from `root` when given, and problems name files relative
    to it. A path that does not exist is a problem of its own. With a `policy` (the
    controller's), the pod fields it refuses are problems too.
    """
    results, checked = _check_files(paths, root, policy)
    _duplicate_names(results)
    problems = sorted({problem for result in results for problem in result.problems})
    return ValidationReport(
        dags=tuple(result.loaded for result in results if result.loaded is not None),
        problems=tuple(problems),
        files_checked=checked,
        names_by_path={result.path: result.name for result in results if result.name is not None},
    )
