"""From a synced commit to the DAG rows and the scheduler's jobs.

Every new revision is read in full: all DAG files are validated together (names must be
unique across the repository, so a file cannot be judged alone), the outcome is written
in one transaction, and only then is the scheduler told. The traps this avoids:

- One bad file blocking the rest. Each file stands on its own: the valid ones are
  applied, an invalid one records its error on its DAG and keeps the last valid spec
  scheduled, so a typo pushed on Friday night does not stop the nightly runs.
- Losing a DAG to a file that cannot be read at all. A file whose YAML is broken
  beyond reading `metadata.name` still exists; the DAG stored at that path is marked
  invalid with the file's problems, never deleted, so its history and schedule stay.
- A half-applied commit. Rows change in one transaction; a crash leaves either the
  previous commit's view or this one's, and git-sync offers the revision again.

Paths stored and reported are relative to the repository root (`sample-dags/etl.yaml`),
the same paths a worker pod sees in its checkout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from controller.metrics import Metrics
from controller.spec.model import dag_to_dict
from controller.spec.podpolicy import PodPolicy
from controller.spec.problems import Problem
from controller.spec.validate import LoadedDag, ValidationReport, validate_paths
from controller.store import DagRecord, Store, UnitOfWork

log = logging.getLogger(__name__)


class ScheduleSink(Protocol):
    """Whatever turns the store's DAGs into scheduler jobs (the Scheduler's `apply`)."""

    def apply(self, dags: Iterable[DagRecord]) -> None: ...


@dataclass(frozen=True)
class DagChange:
    """One thing a revision changed about one DAG, as logged and returned."""

    dag: str
    change: str
    """added, updated, invalid, deleted or restored"""
    path: str
    detail: str = ""


@dataclass(frozen=True)
class SyncOutcome:
    revision: str
    changes: tuple[DagChange, ...]
    invalid_files: int
    dags: tuple[DagRecord, ...]


def repository_root(dags_dir: Path, dags_path: str) -> Path:
    """The checkout root, given the DAG directory inside it and its configured path."""
    root = dags_dir
    for part in PurePosixPath(dags_path).parts:
        if part != ".":
            root = root.parent
    return root


class DagSync:
    """Applies synced revisions to the store; safe to call from several threads."""

    def __init__(
        self,
        store: Store,
        *,
        dags_path: str = ".",
        metrics: Metrics | None = None,
        schedule: ScheduleSink | None = None,
        policy: PodPolicy | None = None,
    ) -> None:
        self._store = store
        self._policy = policy
        self._dags_path = dags_path
        self._metrics = metrics
        self._schedule = schedule
        # Two revisions applied at once could interleave their writes and leave an older
        # commit's view in place; applying is quick, so one at a time costs nothing.
        self._lock = threading.Lock()

    def apply_revision(self, *, revision: str, dags_dir: Path) -> SyncOutcome:
        """Validate every DAG file of the checkout at `dags_dir` and apply the result."""
        with self._lock:
            root = repository_root(dags_dir, self._dags_path)
            report = validate_paths([dags_dir], root=root, policy=self._policy)
            with self._store.transaction() as uow:
                changes = _apply(uow, report, revision=revision)
                dags = tuple(uow.list_dags(include_deleted=True))
            invalid_files = len({problem.path for problem in report.problems})
            if self._metrics is not None:
                self._metrics.invalid_dags.set(invalid_files)
            for change in changes:
                _log_change(change, revision=revision)
            log.info(
                "applied revision %s: %d valid DAGs, %d invalid files, %d changes",
                revision,
                len(report.dags),
                invalid_files,
                len(changes),
                extra={"revision": revision},
            )
            if self._schedule is not None:
                self._schedule.apply(dags)
            return SyncOutcome(revision, tuple(changes), invalid_files, dags)


def _apply(uow: UnitOfWork, report: ValidationReport, *, revision: str) -> list[DagChange]:
    before = {record.name: record for record in uow.list_dags(include_deleted=True)}
    problems_by_path = _problems_by_path(report.problems)
    changes: list[DagChange] = []
    seen: set[str] = set()
    for loaded in report.dags:
        seen.add(loaded.dag.name)
        change = _upsert(uow, loaded, previous=before.get(loaded.dag.name), revision=revision)
        if change is not None:
            changes.append(change)
    for path, problems in problems_by_path.items():
        name = report.names_by_path.get(path) or _name_stored_at(before.values(), path)
        if name is None:
            # Never valid and its name unreadable: nothing to keep, only the error to log.
            changes.append(DagChange("", "invalid", path, _error_text(problems)))
            continue
        seen.add(name)
        error = _error_text(problems)
        previous = before.get(name)
        uow.mark_dag_invalid(name=name, path=path, revision=revision, error=error)
        if previous is None or previous.valid or previous.error != error or previous.deleted:
            changes.append(DagChange(name, "invalid", path, error))
    for name, record in before.items():
        if name not in seen and not record.deleted:
            uow.mark_dag_deleted(name)
            changes.append(DagChange(name, "deleted", record.path))
    return changes


def _upsert(
    uow: UnitOfWork, loaded: LoadedDag, *, previous: DagRecord | None, revision: str
) -> DagChange | None:
    dag = loaded.dag
    # Every valid DAG moves to the new commit even when its file did not change: the
    # scripts its tasks run live in the same repository and may have.
    uow.upsert_dag(
        name=dag.name,
        path=loaded.path,
        revision=revision,
        spec_hash=loaded.content_hash,
        spec=dag_to_dict(dag),
        paused=dag.paused,
    )
    if previous is None:
        return DagChange(dag.name, "added", loaded.path, f"schedule {dag.schedule or 'manual'}")
    if previous.deleted:
        return DagChange(dag.name, "restored", loaded.path)
    if not previous.valid:
        return DagChange(dag.name, "updated", loaded.path, "valid again")
    if previous.spec_hash != loaded.content_hash or previous.path != loaded.path:
        return DagChange(dag.name, "updated", loaded.path, f"schedule {dag.schedule or 'manual'}")
    return None


def _problems_by_path(problems: Sequence[Problem]) -> Mapping[str, list[Problem]]:
    grouped: dict[str, list[Problem]] = {}
    for problem in problems:
        grouped.setdefault(problem.path, []).append(problem)
    return grouped


def _name_stored_at(records: Iterable[DagRecord], path: str) -> str | None:
    for record in records:
        if record.path == path and not record.deleted:
            return record.name
    return None


def _error_text(problems: Sequence[Problem]) -> str:
    return "\n".join(str(problem) for problem in problems)


def _log_change(change: DagChange, *, revision: str) -> None:
    extra = {"dag": change.dag or None, "path": change.path, "revision": revision}
    if change.change == "invalid":
        log.warning(
            "DAG %s at %s is invalid%s: %s",
            change.dag or "(unnamed)",
            change.path,
            "; its last valid version stays scheduled" if change.dag else "",
            change.detail,
            extra=extra,
        )
    else:
        suffix = f" ({change.detail})" if change.detail else ""
        log.info("DAG %s %s at %s%s", change.dag, change.change, change.path, suffix, extra=extra)
