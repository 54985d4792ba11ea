"""Real git repositories for git-sync tests: a bare "server" and a clone to push from."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.gitsync import GitSyncConfig


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.strip()


@dataclass
class Remote:
    """A bare repository served over file:// and a work clone that pushes to it."""

    bare: Path
    work: Path

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def commit(self, files: dict[str, str | None], *, branch: str = "main") -> str:
        """Write (or, for None, delete) files, commit, push `branch`; return the SHA."""
        for name, content in files.items():
            path = self.work / name
            if content is None:
                git(self.work, "rm", "-q", "--", name)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            git(self.work, "add", "--", name)
        git(self.work, "commit", "-q", "--allow-empty", "-m", f"update {sorted(files)}")
        git(self.work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return git(self.work, "rev-parse", "HEAD")

    def tag(self, name: str, *, annotated: bool = False) -> None:
        if annotated:
            git(self.work, "tag", "-a", "-m", name, name)
        else:
            git(self.work, "tag", name)
        git(self.work, "push", "-q", "origin", f"refs/tags/{name}")


def init_work_repo(path: Path) -> None:
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "commit.gpgsign", "false")


def make_remote(tmp_path: Path) -> Remote:
    """A bare repository under tmp_path/server and a work clone pushing to it."""
    bare = tmp_path / "server" / "dags.git"
    bare.mkdir(parents=True)
    git(bare, "init", "-q", "--bare", "-b", "main")
    work = tmp_path / "work"
    work.mkdir()
    init_work_repo(work)
    git(work, "remote", "add", "origin", bare.as_uri())
    return Remote(bare=bare, work=work)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path)


@pytest.fixture
def sync_root(tmp_path: Path) -> Path:
    return tmp_path / "sync"


def make_config(remote: Remote, root: Path, **overrides: object) -> GitSyncConfig:
    settings: dict[str, object] = {"repo_url": remote.url, "root": root, "command_timeout": 20.0}
    settings.update(overrides)
    return GitSyncConfig(**settings)  # type: ignore[arg-type]
