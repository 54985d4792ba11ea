"""How to reach and follow the DAG repository: one frozen value, checked when built.

A controller that starts with a half-valid git configuration fails much later and far
from the cause (a token pasted into the URL that then sits in `.git/config` and in every
error message). So every rule is checked here, at construction, with a message naming
the setting: credentials belong in files, never in the URL; the DAG path must stay
inside the repository. SSH repositories are not followed at all (worker pods could not
check them out); the controller refuses them at start, see `is_ssh_url`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from controller.base.backoff import Backoff

_SHA_RE = re.compile(r"[0-9a-f]{40}")

SYNC_BACKOFF = Backoff(base=1.0, cap=300.0, max_attempts=None, max_elapsed=None)
"""Failed fetches retry without end: a controller that stopped following its repository
would serve stale DAGs silently. The cap bounds how late a recovery is noticed."""


class GitSyncConfigError(ValueError):
    """A git-sync setting that cannot work; the message names the setting."""


def is_pinned_sha(ref: str) -> bool:
    """A ref that is a full commit SHA never moves, so it never needs fetching again."""
    return _SHA_RE.fullmatch(ref) is not None


@dataclass(frozen=True)
class HttpsAuth:
    """HTTPS credentials read from files (mounted Secrets), never from the URL.

    Either `token_file` (sent as the password, with `token_username` as the user name,
    which GitHub, GitLab and Gitea all accept) or `username_file` + `password_file`.
    """

    token_file: Path | None = None
    token_username: str = "x-access-token"  # noqa: S105 - a user name, not a secret
    username_file: Path | None = None
    password_file: Path | None = None

    def __post_init__(self) -> None:
        basic = self.username_file is not None or self.password_file is not None
        if self.token_file is not None and basic:
            raise GitSyncConfigError(
                "HTTPS auth takes either a token file or a username and password file, not both"
            )
        if self.token_file is None and not (
            self.username_file is not None and self.password_file is not None
        ):
            raise GitSyncConfigError(
                "HTTPS auth needs a token file, or both a username file and a password file"
            )


@dataclass(frozen=True)
class GitSyncConfig:
    """Everything git-sync needs. `root` holds the cache repository and the checkouts."""

    repo_url: str
    root: Path
    ref: str = "main"
    dags_path: str = "."
    interval: float = 30.0
    depth: int = 1
    auth: HttpsAuth | None = None
    command_timeout: float = 120.0
    backoff: Backoff = SYNC_BACKOFF
    keep_revisions: int = 3

    def __post_init__(self) -> None:
        _check_url(self.repo_url, self.auth)
        if not self.ref or self.ref.startswith("-") or any(c.isspace() for c in self.ref):
            raise GitSyncConfigError(f"ref {self.ref!r} is not a branch, tag or commit SHA")
        dags = PurePosixPath(self.dags_path)
        if dags.is_absolute() or ".." in dags.parts:
            raise GitSyncConfigError(
                f"dags path {self.dags_path!r} must be relative and inside the repository"
            )
        if self.interval <= 0:
            raise GitSyncConfigError(f"interval must be positive, got {self.interval}")
        if self.depth < 0:
            raise GitSyncConfigError(f"depth must be 0 (full history) or more, got {self.depth}")
        if self.command_timeout <= 0:
            raise GitSyncConfigError(
                f"command timeout must be positive, got {self.command_timeout}"
            )
        if self.keep_revisions < 1:
            raise GitSyncConfigError(
                f"keep_revisions must be at least 1 (the current one), got {self.keep_revisions}"
            )

    @property
    def pinned(self) -> bool:
        return is_pinned_sha(self.ref)


_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
# [user@]host:path, the scp-like form ssh remotes often use (no scheme, a colon before
# any slash).
_SCP_LIKE = re.compile(r"^(?:[^/:@]+@)?[^/:]+:(?!//)")


def is_ssh_url(url: str) -> bool:
    """Whether git would reach `url` over SSH."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    return scheme in _SSH_SCHEMES or (not scheme and _SCP_LIKE.match(url) is not None)


def _check_url(url: str, auth: HttpsAuth | None) -> None:
    if not url or url.startswith("-"):
        raise GitSyncConfigError(f"repository URL {url!r} is not a URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and (parts.username or parts.password):
        raise GitSyncConfigError(
            "the repository URL must not contain credentials; "
            "put the token in a file and configure HTTPS auth with it"
        )
    if auth is not None and scheme not in ("http", "https"):
        raise GitSyncConfigError("HTTPS auth is configured but the repository URL is not https://")
