"""The background loop: new commits are delivered, failures back off, readers stay safe."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.base.backoff import Backoff
from controller.gitsync import GitSync, GitSyncError, SyncResult
from tests.gitsync.conftest import Remote, make_config

WAIT = 10.0


@pytest.fixture
def delivered() -> queue.Queue[SyncResult]:
    return queue.Queue()


@pytest.fixture
def running(
    remote: Remote, sync_root: Path, delivered: queue.Queue[SyncResult]
) -> Iterator[GitSync]:
    """A loop with a long interval that has already delivered a first commit."""
    first = remote.commit({"a.yaml": "v1\n"})
    sync = GitSync(make_config(remote, sync_root, interval=60.0), on_revision=delivered.put)
    sync.start()
    try:
        assert delivered.get(timeout=WAIT).revision == first
        yield sync
    finally:
        sync.stop(timeout=WAIT)


def test_the_loop_delivers_the_first_revision_at_once(
    remote: Remote, sync_root: Path, delivered: queue.Queue[SyncResult]
) -> None:
    sha = remote.commit({"a.yaml": "a\n"})
    sync = GitSync(make_config(remote, sync_root, interval=60.0), on_revision=delivered.put)
    sync.start()
    try:
        assert delivered.get(timeout=WAIT).revision == sha
    finally:
        sync.stop(timeout=WAIT)


def test_trigger_syncs_a_new_commit_without_waiting_for_the_interval(
    remote: Remote, running: GitSync, delivered: queue.Queue[SyncResult]
) -> None:
    sha = remote.commit({"a.yaml": "v2\n"})
    running.trigger()
    assert delivered.get(timeout=WAIT).revision == sha


def test_interval_sync_picks_up_a_push(
    remote: Remote, sync_root: Path, delivered: queue.Queue[SyncResult]
) -> None:
    remote.commit({"a.yaml": "v1\n"})
    sync = GitSync(make_config(remote, sync_root, interval=0.2), on_revision=delivered.put)
    sync.start()
    try:
        delivered.get(timeout=WAIT)
        sha = remote.commit({"a.yaml": "v2\n"})
        assert delivered.get(timeout=WAIT).revision == sha
    finally:
        sync.stop(timeout=WAIT)


def test_a_failing_callback_gets_the_same_revision_again(remote: Remote, sync_root: Path) -> None:
    sha = remote.commit({"a.yaml": "a\n"})
    calls: queue.Queue[str] = queue.Queue()

    def flaky(result: SyncResult) -> None:
        calls.put(result.revision)
        if calls.qsize() == 1:
            raise RuntimeError("database is down")

    sync = GitSync(make_config(remote, sync_root, interval=0.1), on_revision=flaky)
    sync.start()
    try:
        assert calls.get(timeout=WAIT) == sha
        assert calls.get(timeout=WAIT) == sha
    finally:
        sync.stop(timeout=WAIT)


def test_an_unreachable_repository_keeps_the_last_revision_and_reports_it(
    remote: Remote, sync_root: Path
) -> None:
    sha = remote.commit({"a.yaml": "a\n"})
    sync = GitSync(make_config(remote, sync_root))
    sync.sync_once()
    remote.bare.rename(remote.bare.with_name("gone.git"))
    for _ in range(2):
        with pytest.raises(GitSyncError, match="fetching ref 'main'"):
            sync.sync_once()
    status = sync.status()
    assert status.revision == sha
    assert status.ready
    assert status.consecutive_failures == 2
    assert status.last_error is not None
    assert "fetching ref 'main'" in status.last_error
    assert status.last_attempt is not None
    assert status.last_success is not None
    assert status.last_success < status.last_attempt
    assert (sync_root / "current" / "a.yaml").read_text() == "a\n"


def test_the_loop_backs_off_while_failing_and_recovers(
    remote: Remote, sync_root: Path, delivered: queue.Queue[SyncResult]
) -> None:
    sha = remote.commit({"a.yaml": "a\n"})
    hidden = remote.bare.with_name("hidden.git")
    remote.bare.rename(hidden)
    config = make_config(remote, sync_root, interval=60.0, backoff=Backoff(base=0.05, cap=0.2))
    sync = GitSync(config, on_revision=delivered.put)
    sync.start()
    try:
        # Retries come on the backoff schedule, far sooner than the 60 s interval.
        _wait_until(lambda: sync.status().consecutive_failures >= 3)
        assert not sync.status().ready
        hidden.rename(remote.bare)
        assert delivered.get(timeout=WAIT).revision == sha
        status = sync.status()
        assert status.consecutive_failures == 0
        assert status.last_error is None
    finally:
        sync.stop(timeout=WAIT)


def test_a_reader_never_sees_a_mixed_tree_while_revisions_switch(
    remote: Remote, sync_root: Path
) -> None:
    names = [f"dag{n:02d}.yaml" for n in range(12)]
    remote.commit(dict.fromkeys(names, "version: 0\n"))
    sync = GitSync(make_config(remote, sync_root, keep_revisions=20))
    sync.sync_once()
    stop = threading.Event()
    seen: list[set[str]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.wait(0.001):
                # Resolve `current` once, then read the whole tree from that revision.
                tree = Path(os.path.realpath(sync_root / "current"))
                seen.append({(tree / name).read_text() for name in names})
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 7):
            remote.commit(dict.fromkeys(names, f"version: {version}\n"))
            sync.sync_once()
    finally:
        stop.set()
        thread.join(WAIT)
    assert not errors
    assert len(seen) > 6
    assert all(len(contents) == 1 for contents in seen)
    assert len({next(iter(contents)) for contents in seen}) > 1


def test_a_signed_webhook_for_the_followed_branch_triggers_a_sync(
    remote: Remote, running: GitSync, delivered: queue.Queue[SyncResult]
) -> None:
    sha = remote.commit({"a.yaml": "v2\n"})
    body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
    signature = hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={signature}"}
    status, message = running.handle_webhook(headers, body, secret=b"hook-secret")
    assert status == 202, message
    assert delivered.get(timeout=WAIT).revision == sha


def test_webhook_answers_for_refused_ignored_and_malformed_requests(
    remote: Remote, sync_root: Path
) -> None:
    sync = GitSync(make_config(remote, sync_root))
    secret = b"hook-secret"

    def signed(body: bytes, event: str = "push") -> dict[str, str]:
        digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
        return {"X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={digest}"}

    other = json.dumps({"ref": "refs/heads/other", "after": "a" * 40}).encode()
    assert sync.handle_webhook(signed(other), other, secret=b"wrong")[0] == 401
    assert sync.handle_webhook(signed(other), other, secret=secret)[0] == 200
    assert sync.handle_webhook(signed(other, "ping"), other, secret=secret)[0] == 200
    assert sync.handle_webhook(signed(b"[]"), b"[]", secret=secret)[0] == 400


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
