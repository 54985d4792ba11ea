"""The log store on a directory, a file:// URL and fsspec's in-memory filesystem."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from controller.base.tries import TryKey
from controller.logstore import LogKey, LogStore


@pytest.fixture(params=["directory", "file-url", "memory"])
def log_store(request: pytest.FixtureRequest, tmp_path: Path) -> LogStore:
    if request.param == "directory":
        return LogStore(str(tmp_path / "logs"))
    if request.param == "file-url":
        return LogStore(f"file://{tmp_path}/logs")
    return LogStore(f"memory://kubedag-test-{uuid.uuid4().hex}")


def key(container: str = "task", *, try_number: int = 1) -> LogKey:
    return LogKey(TryKey(7, "load", 2, try_number), container)


def test_a_stored_log_reads_back_as_written(log_store: LogStore) -> None:
    log_store.write(key(), "line one\nzwei ünd drei\n")
    assert log_store.read(key()) == "line one\nzwei ünd drei\n"
    assert log_store.exists(key())
    assert not log_store.exists(key(try_number=2))


def test_a_log_never_stored_reads_as_none(log_store: LogStore) -> None:
    assert log_store.read(key()) is None
    assert not log_store.exists(key())
    assert log_store.containers(TryKey(7, "load", 2, 1)) == []


def test_storing_again_replaces_the_log(log_store: LogStore) -> None:
    log_store.write(key(), "first attempt, cut short")
    log_store.write(key(), "whole log")
    assert log_store.read(key()) == "whole log"


def test_containers_lists_each_try_separately(log_store: LogStore) -> None:
    log_store.write(key("task"), "main")
    log_store.write(key("git-checkout"), "init")
    log_store.write(key("task", try_number=2), "retry")
    assert log_store.containers(TryKey(7, "load", 2, 1)) == [
        "git-checkout",
        "task",
    ]
    assert log_store.containers(TryKey(7, "load", 2, 2)) == ["task"]


def test_a_directory_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path))
    store.write(key(), "x" * 10_000)
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["task.log"]
