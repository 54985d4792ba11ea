"""The on-disk layout of git-sync: one cache repository, one directory per revision.

    root/cache.git        bare repository; fetched into, never read by DAG loaders
    root/revs/<sha>/      a complete checkout of one commit (a detached worktree)
    root/current          symlink to revs/<sha>, replaced atomically by rename

The trap this avoids is the half-updated tree: checking a new commit out over the tree a
loader is reading gives it some files from the old commit and some from the new one. Here
a commit is checked out into a hidden directory, renamed to `revs/<sha>` only once
complete (so an existing `revs/<sha>` is always whole, even after a crash), and published
by renaming a fresh symlink over `current`. A reader that resolves `current` once sees
exactly one commit. Old revisions are pruned, keeping the newest few, so a reader that
resolved `current` just before a switch still finds its files.

The repository URL is passed to each fetch and never stored in the cache's config.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import git

from controller.gitsync.credentials import GitCredentials
from controller.gitsync.settings import GitSyncConfig

log = logging.getLogger(__name__)

_TARGET_REF = "refs/kubedag/target"
_INCOMING_PREFIX = ".incoming-"


class GitSyncError(Exception):
    """The repository could not be synced; the message is safe to log and show."""


class CheckoutStore:
    """Fetches the configured ref into the cache and lays out revisions under `root`."""

    def __init__(self, config: GitSyncConfig, credentials: GitCredentials) -> None:
        self._config = config
        self._credentials = credentials
        # Absolute, because git runs with the cache as its working directory.
        self.root = config.root.absolute()
        self.cache = self.root / "cache.git"
        self.revs = self.root / "revs"
        self.current_link = self.root / "current"
        self._env: dict[str, str] = {}

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold `root` exclusively, then clear lock files a killed git left behind.

        A git command killed at its timeout can leave `shallow.lock` or a ref lock, and
        every later fetch would fail on it. Removing them is only safe because the file
        lock guarantees no other git-sync is working in this root.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise GitSyncError(
                    f"another process is syncing into {self.root}; "
                    "each git-sync needs its own root directory"
                ) from exc
            self._clear_stale_git_locks()
            # Built once per sync, so a rotated Secret applies from the next sync on.
            self._env = self._credentials.env()
            yield
        finally:
            os.close(fd)

    def fetch(self) -> str:
        """Fetch the ref (unless a pinned SHA is already here) and return its commit SHA."""
        self._ensure_cache()
        config = self._config
        if config.pinned and self._has_commit(config.ref):
            return config.ref
        args = ["fetch", "--no-tags", "--no-write-fetch-head", "--quiet"]
        if config.depth > 0:
            args.append(f"--depth={config.depth}")
        args += ["--", config.repo_url, f"+{config.ref}:{_TARGET_REF}"]
        self._git(*args, action=f"fetching ref {config.ref!r} from {config.repo_url}")
        sha = self._git(
            "rev-parse",
            "--verify",
            "--quiet",
            f"{_TARGET_REF}^{{commit}}",
            action=f"resolving ref {config.ref!r}",
        )
        if config.pinned and sha != config.ref:
            raise GitSyncError(f"fetched {sha} while asking for pinned commit {config.ref}")
        return sha

    def checkout(self, sha: str) -> Path:
        """Return `revs/<sha>`, checking the commit out there first if needed."""
        target = self.revs / sha
        if target.is_dir():
            return target
        self._require_dags_dir(sha)
        self.revs.mkdir(parents=True, exist_ok=True)
        incoming = self.revs / f"{_INCOMING_PREFIX}{sha}-{uuid.uuid4().hex[:8]}"
        self._git(
            "worktree",
            "add",
            "--detach",
            "--quiet",
            str(incoming),
            sha,
            action=f"checking out {sha}",
        )
        self._git(
            "worktree",
            "move",
            str(incoming),
            str(target),
            action=f"moving the checkout of {sha} into place",
        )
        return target

    def switch(self, sha: str) -> None:
        """Point `current` at `revs/<sha>` in one atomic rename."""
        tmp = self.root / f".current-{uuid.uuid4().hex[:8]}"
        os.symlink(os.path.join("revs", sha), tmp)
        os.replace(tmp, self.current_link)
        # The newest-switched revision counts as the most recent when pruning.
        os.utime(self.revs / sha)

    def current_revision(self) -> str | None:
        """The SHA `current` points at, or None before the first successful sync."""
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        sha = PurePosixPath(target).name
        return sha if (self.revs / sha).is_dir() else None

    def dags_dir(self, sha: str) -> Path:
        return self.revs / sha / self._config.dags_path

    def prune(self) -> None:
        """Remove old revisions, keeping `current` and the newest others up to the limit."""
        if not self.revs.is_dir():
            return
        current = self.current_revision()
        # Symlinks and caches a crash left half-made; never visible under their real names.
        for link in self.root.glob(".current-*"):
            link.unlink(missing_ok=True)
        for cache in self.root.glob(".cache-*.git"):
            shutil.rmtree(cache, ignore_errors=True)
        leftovers = [p for p in self.revs.iterdir() if p.name.startswith(_INCOMING_PREFIX)]
        others = [
            p
            for p in self.revs.iterdir()
            if p.is_dir() and not p.name.startswith(".") and p.name != current
        ]
        others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        keep_others = self._config.keep_revisions - (1 if current else 0)
        doomed = leftovers + others[max(keep_others, 0) :]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
        if doomed:
            self._git("worktree", "prune", action="pruning old checkouts")
            log.debug("pruned %d old revision directories", len(doomed))

    def _clear_stale_git_locks(self) -> None:
        if not self.cache.is_dir():
            return
        stale = [*self.cache.glob("*.lock"), *self.cache.glob("refs/**/*.lock")]
        for lock in stale:
            lock.unlink(missing_ok=True)
        if stale:
            log.warning("removed %d lock files left by an interrupted git command", len(stale))

    def _ensure_cache(self) -> None:
        if (self.cache / "HEAD").is_file():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        # Created under a temporary name and renamed, so a crash never leaves a cache
        # that looks initialized but is not.
        tmp = self.root / f".cache-{uuid.uuid4().hex[:8]}.git"
        try:
            git.Git(str(self.root)).execute(
                ["git", "init", "--bare", "--quiet", str(tmp)],
                kill_after_timeout=self._config.command_timeout,
            )
        except git.GitCommandError as exc:
            raise GitSyncError(f"creating the cache repository failed: {exc.stderr}") from exc
        if self.cache.exists():
            shutil.rmtree(self.cache)
        os.replace(tmp, self.cache)

    def _has_commit(self, sha: str) -> bool:
        status, _, _ = self._run("cat-file", "-e", f"{sha}^{{commit}}")
        return status == 0

    def _require_dags_dir(self, sha: str) -> None:
        dags = PurePosixPath(self._config.dags_path)
        if str(dags) == ".":
            return
        status, kind, _ = self._run("cat-file", "-t", f"{sha}:{dags}")
        if status != 0 or kind.strip() != "tree":
            raise GitSyncError(
                f"commit {sha} has no directory {str(dags)!r}; check the DAGs path setting "
                "(to remove every DAG, keep the directory with an empty placeholder file)"
            )

    def _git(self, *args: str, action: str) -> str:
        status, out, err = self._run(*args)
        if status != 0:
            detail = "; ".join(line.strip() for line in err.splitlines() if line.strip())
            raise GitSyncError(
                self._credentials.scrub(f"{action} failed: {detail or f'exit code {status}'}")
            )
        return out.strip()

    def _run(self, *args: str) -> tuple[int, str, str]:
        try:
            status, out, err = git.Git(str(self.cache)).execute(
                ["git", f"--git-dir={self.cache}", *args],
                with_extended_output=True,
                with_exceptions=False,
                kill_after_timeout=self._config.command_timeout,
                env=self._env,
            )
        except git.GitCommandNotFound as exc:
            raise GitSyncError("the git executable was not found on PATH") from exc
        return int(status or 0), str(out), str(err)
