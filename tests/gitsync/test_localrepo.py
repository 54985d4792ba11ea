"""`kubedag run FILE` pins a file to a commit worker pods can fetch, or says why not."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.gitsync.localrepo import PinError, pinned_revision
from tests.gitsync.conftest import Remote, git, init_work_repo

DAG = "apiVersion: kubedag.io/v1\nkind: DAG\n"


@pytest.fixture
def local(tmp_path: Path) -> Path:
    """A repository with one committed DAG file and no remote."""
    repo = tmp_path / "project"
    (repo / "dags").mkdir(parents=True)
    init_work_repo(repo)
    (repo / "dags" / "daily.yaml").write_text(DAG)
    (repo / "jobs.py").write_text("print(1)\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def test_a_clean_file_is_pinned_to_head(local: Path) -> None:
    pinned = pinned_revision(local / "dags" / "daily.yaml")
    assert pinned.root == local.resolve()
    assert pinned.revision == git(local, "rev-parse", "HEAD")
    assert pinned.path == "dags/daily.yaml"
    assert pinned.uncommitted_elsewhere == ()


def test_without_origin_the_local_repository_is_the_fetch_url(local: Path) -> None:
    assert pinned_revision(local / "dags" / "daily.yaml").fetch_url == local.resolve().as_uri()


def test_a_relative_path_is_resolved(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(local / "dags")
    assert pinned_revision(Path("daily.yaml")).path == "dags/daily.yaml"


def test_with_origin_the_pushed_commit_is_fetched_from_origin(remote: Remote) -> None:
    sha = remote.commit({"dags/daily.yaml": DAG})
    pinned = pinned_revision(remote.work / "dags" / "daily.yaml")
    assert pinned.revision == sha
    assert pinned.fetch_url == remote.url
    # A worker's fetch of the pinned commit from that URL really works.
    clone = remote.work.parent / "worker"
    git(remote.work.parent, "init", "-q", str(clone))
    git(clone, "fetch", "-q", "--depth=1", pinned.fetch_url, pinned.revision)
    assert git(clone, "cat-file", "-t", pinned.revision) == "commit"


def test_an_unpushed_commit_is_refused(remote: Remote) -> None:
    remote.commit({"dags/daily.yaml": DAG})
    (remote.work / "dags" / "daily.yaml").write_text(DAG + "# local\n")
    git(remote.work, "commit", "-q", "-am", "not pushed")
    with pytest.raises(PinError, match="push it first"):
        pinned_revision(remote.work / "dags" / "daily.yaml")


def test_credentials_in_origin_never_reach_the_fetch_url(local: Path) -> None:
    git(local, "remote", "add", "origin", "https://bot:tok3n-value@git.example.com/team/dags.git")
    git(local, "update-ref", "refs/remotes/origin/main", "HEAD")
    pinned = pinned_revision(local / "dags" / "daily.yaml")
    assert pinned.fetch_url == "https://git.example.com/team/dags.git"


def test_a_relative_path_origin_becomes_a_file_url(local: Path, remote: Remote) -> None:
    git(local, "remote", "add", "origin", "../server/dags.git")
    git(local, "update-ref", "refs/remotes/origin/main", "HEAD")
    pinned = pinned_revision(local / "dags" / "daily.yaml")
    assert pinned.fetch_url == (local.parent / "server" / "dags.git").resolve().as_uri()


def test_an_ssh_origin_is_kept_as_is(local: Path) -> None:
    git(local, "remote", "add", "origin", "git@github.com:team/dags.git")
    git(local, "update-ref", "refs/remotes/origin/main", "HEAD")
    assert pinned_revision(local / "dags" / "daily.yaml").fetch_url == (
        "git@github.com:team/dags.git"
    )


def test_an_unstaged_change_is_refused_naming_the_file(local: Path) -> None:
    dag = local / "dags" / "daily.yaml"
    dag.write_text(DAG + "# edited\n")
    with pytest.raises(PinError, match=r"daily\.yaml has uncommitted changes"):
        pinned_revision(dag)


def test_a_staged_change_is_refused(local: Path) -> None:
    dag = local / "dags" / "daily.yaml"
    dag.write_text(DAG + "# edited\n")
    git(local, "add", "dags/daily.yaml")
    with pytest.raises(PinError, match="uncommitted changes"):
        pinned_revision(dag)


def test_an_untracked_file_is_refused(local: Path) -> None:
    new = local / "dags" / "new.yaml"
    new.write_text(DAG)
    with pytest.raises(PinError, match=r"new\.yaml is not committed"):
        pinned_revision(new)


def test_a_staged_but_never_committed_file_is_refused(local: Path) -> None:
    new = local / "dags" / "new.yaml"
    new.write_text(DAG)
    git(local, "add", "dags/new.yaml")
    with pytest.raises(PinError, match="is not committed"):
        pinned_revision(new)


def test_a_file_outside_any_repository_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose" / "dag.yaml"
    loose.parent.mkdir()
    loose.write_text(DAG)
    with pytest.raises(PinError, match=r"dag\.yaml is not in a git repository"):
        pinned_revision(loose)


def test_a_missing_file_is_refused(local: Path) -> None:
    with pytest.raises(PinError, match="no such file"):
        pinned_revision(local / "dags" / "absent.yaml")


def test_a_repository_without_commits_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    init_work_repo(repo)
    (repo / "dag.yaml").write_text(DAG)
    with pytest.raises(PinError, match="no commits yet"):
        pinned_revision(repo / "dag.yaml")


def test_changes_to_other_files_are_reported_not_refused(local: Path) -> None:
    (local / "jobs.py").write_text("print(2)\n")
    pinned = pinned_revision(local / "dags" / "daily.yaml")
    assert pinned.uncommitted_elsewhere == ("jobs.py",)
