"""git-sync against real repositories: following a ref, laying out revisions, pruning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.gitsync import GitSync, GitSyncError
from tests.gitsync.conftest import Remote, git, make_config


def test_first_sync_checks_out_the_branch_head(remote: Remote, sync_root: Path) -> None:
    sha = remote.commit({"dags/a.yaml": "a: 1\n"})
    result = GitSync(make_config(remote, sync_root)).sync_once()
    assert result.revision == sha
    assert result.changed
    assert (result.dags_dir / "dags" / "a.yaml").read_text() == "a: 1\n"
    assert os.path.realpath(sync_root / "current") == str((sync_root / "revs" / sha).resolve())


def test_second_sync_without_a_push_reports_no_change(remote: Remote, sync_root: Path) -> None:
    sha = remote.commit({"a.yaml": "a: 1\n"})
    sync = GitSync(make_config(remote, sync_root))
    sync.sync_once()
    again = sync.sync_once()
    assert again.revision == sha
    assert not again.changed


def test_a_new_commit_is_detected_and_gets_its_own_directory(
    remote: Remote, sync_root: Path
) -> None:
    first = remote.commit({"a.yaml": "v1\n"})
    sync = GitSync(make_config(remote, sync_root))
    sync.sync_once()
    second = remote.commit({"a.yaml": "v2\n"})
    result = sync.sync_once()
    assert result.changed
    assert result.revision == second
    assert (sync_root / "current" / "a.yaml").read_text() == "v2\n"
    assert (sync_root / "revs" / first / "a.yaml").read_text() == "v1\n"


def test_dags_dir_points_into_the_configured_subdirectory(remote: Remote, sync_root: Path) -> None:
    remote.commit({"deploy/dags/a.yaml": "a\n", "README.md": "hi\n"})
    result = GitSync(make_config(remote, sync_root, dags_path="deploy/dags")).sync_once()
    assert result.dags_dir == sync_root / "revs" / result.revision / "deploy" / "dags"
    assert [p.name for p in result.dags_dir.iterdir()] == ["a.yaml"]


def test_missing_dags_directory_fails_and_keeps_the_last_revision(
    remote: Remote, sync_root: Path
) -> None:
    good = remote.commit({"dags/a.yaml": "a\n"})
    sync = GitSync(make_config(remote, sync_root, dags_path="dags"))
    sync.sync_once()
    remote.commit({"dags/a.yaml": None, "other.txt": "x\n"})
    with pytest.raises(GitSyncError, match="no directory 'dags'"):
        sync.sync_once()
    assert sync.status().revision == good
    assert (sync_root / "current" / "dags" / "a.yaml").exists()


def test_follows_a_non_default_branch(remote: Remote, sync_root: Path) -> None:
    remote.commit({"a.yaml": "main\n"})
    release = remote.commit({"a.yaml": "release\n"}, branch="release")
    result = GitSync(make_config(remote, sync_root, ref="release")).sync_once()
    assert result.revision == release
    assert (result.dags_dir / "a.yaml").read_text() == "release\n"


@pytest.mark.parametrize("annotated", [False, True])
def test_follows_a_tag(remote: Remote, sync_root: Path, annotated: bool) -> None:
    tagged = remote.commit({"a.yaml": "tagged\n"})
    remote.tag("v1.0", annotated=annotated)
    remote.commit({"a.yaml": "later\n"})
    result = GitSync(make_config(remote, sync_root, ref="v1.0")).sync_once()
    assert result.revision == tagged
    assert (result.dags_dir / "a.yaml").read_text() == "tagged\n"


def test_a_pinned_sha_stays_put_while_the_branch_moves(remote: Remote, sync_root: Path) -> None:
    pinned = remote.commit({"a.yaml": "pinned\n"})
    remote.commit({"a.yaml": "newer\n"})
    sync = GitSync(make_config(remote, sync_root, ref=pinned))
    assert sync.sync_once().revision == pinned
    remote.commit({"a.yaml": "newest\n"})
    again = sync.sync_once()
    assert again.revision == pinned
    assert not again.changed
    assert (again.dags_dir / "a.yaml").read_text() == "pinned\n"


def test_fetches_are_shallow(remote: Remote, sync_root: Path) -> None:
    for n in range(3):
        remote.commit({"a.yaml": f"{n}\n"})
    GitSync(make_config(remote, sync_root)).sync_once()
    cache = sync_root / "cache.git"
    assert git(cache, "rev-list", "--count", "refs/kubedag/target") == "1"


def test_the_repository_url_is_not_stored_in_the_cache_config(
    remote: Remote, sync_root: Path
) -> None:
    remote.commit({"a.yaml": "a\n"})
    GitSync(make_config(remote, sync_root)).sync_once()
    assert remote.url not in (sync_root / "cache.git" / "config").read_text()


def test_old_revisions_are_pruned_keeping_the_newest(remote: Remote, sync_root: Path) -> None:
    sync = GitSync(make_config(remote, sync_root, keep_revisions=2))
    shas = []
    for n in range(4):
        shas.append(remote.commit({"a.yaml": f"{n}\n"}))
        sync.sync_once()
    kept = sorted(p.name for p in (sync_root / "revs").iterdir())
    assert kept == sorted(shas[-2:])
    worktrees = git(sync_root / "cache.git", "worktree", "list", "--porcelain")
    assert shas[0] not in worktrees


def test_a_force_push_back_to_an_older_commit_is_followed(remote: Remote, sync_root: Path) -> None:
    old = remote.commit({"a.yaml": "old\n"})
    sync = GitSync(make_config(remote, sync_root))
    sync.sync_once()
    remote.commit({"a.yaml": "new\n"})
    sync.sync_once()
    git(remote.work, "push", "-q", "--force", "origin", f"{old}:refs/heads/main")
    result = sync.sync_once()
    assert result.revision == old
    assert result.changed
    assert (sync_root / "current" / "a.yaml").read_text() == "old\n"


def test_a_restarted_syncer_reports_its_first_revision_as_changed(
    remote: Remote, sync_root: Path
) -> None:
    remote.commit({"a.yaml": "a\n"})
    GitSync(make_config(remote, sync_root)).sync_once()
    result = GitSync(make_config(remote, sync_root)).sync_once()
    assert result.changed


def test_a_lock_file_left_by_a_killed_git_does_not_block_later_syncs(
    remote: Remote, sync_root: Path
) -> None:
    remote.commit({"a.yaml": "v1\n"})
    sync = GitSync(make_config(remote, sync_root))
    sync.sync_once()
    (sync_root / "cache.git" / "shallow.lock").write_text("")
    (sync_root / "cache.git" / "refs" / "kubedag" / "target.lock").write_text("")
    sha = remote.commit({"a.yaml": "v2\n"})
    assert sync.sync_once().revision == sha


def test_two_syncers_cannot_share_a_root(remote: Remote, sync_root: Path) -> None:
    remote.commit({"a.yaml": "v1\n"})
    sync = GitSync(make_config(remote, sync_root))
    other = GitSync(make_config(remote, sync_root))
    with sync._store.locked(), pytest.raises(GitSyncError, match="its own root directory"):
        other.sync_once()


def test_a_checkout_interrupted_by_a_crash_is_cleaned_up(remote: Remote, sync_root: Path) -> None:
    remote.commit({"a.yaml": "v1\n"})
    sync = GitSync(make_config(remote, sync_root))
    sync.sync_once()
    half_done = sync_root / "revs" / f".incoming-{'d' * 40}-1234abcd"
    half_done.mkdir()
    (half_done / "a.yaml").write_text("partial")
    stray_link = sync_root / ".current-1234abcd"
    stray_link.symlink_to("revs/nowhere")
    remote.commit({"a.yaml": "v2\n"})
    sync.sync_once()
    assert not half_done.exists()
    assert not stray_link.is_symlink()


def test_a_relative_root_works_from_any_working_directory(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = remote.commit({"a.yaml": "a\n"})
    monkeypatch.chdir(tmp_path)
    result = GitSync(make_config(remote, Path("relative-root"))).sync_once()
    assert result.revision == sha
    assert (tmp_path / "relative-root" / "current" / "a.yaml").read_text() == "a\n"
