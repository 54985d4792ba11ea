"""Pin a local DAG file to the commit that worker pods will fetch (`kubedag run FILE`).

Worker pods never see the user's working tree: their init container fetches a commit.
Running a DAG file with uncommitted edits would therefore run something other than what
the user is looking at, so such a file is refused, naming it and saying what to do. The
commit must also be fetchable: with an `origin` remote, HEAD has to be on one of its
branches (pushed); without one, the local repository itself is the source, as a file://
URL, which is what a process-mode local cluster can reach.

The fetch URL ends up in pod specs, so any userinfo (a token pasted into `origin`) is
stripped from it: credentials reach pods only through Secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import git

_LOCAL_TIMEOUT = 30.0
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# user@host:path, the scp-like form ssh remotes often use.
_SCP_RE = re.compile(r"^[^/:]+@[^/:]+:")


class PinError(Exception):
    """The file cannot be pinned to a fetchable commit; the message says why and what to do."""


@dataclass(frozen=True)
class PinnedFile:
    """A DAG file at the commit a run will use.

    `uncommitted_elsewhere` lists other tracked files with uncommitted changes: they
    will not be in the run, which a caller may want to warn about.
    """

    root: Path
    revision: str
    fetch_url: str
    path: str
    uncommitted_elsewhere: tuple[str, ...]


def pinned_revision(path: Path) -> PinnedFile:
    """Pin `path` to HEAD of its repository, refusing anything workers would not see."""
    file = path.resolve()
    if not file.is_file():
        raise PinError(f"{path}: no such file")
    try:
        repo = git.Repo(file.parent, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise PinError(
            f"{path} is not in a git repository; a run is pinned to a commit, "
            "so commit the file to a repository first"
        ) from exc
    with repo:
        try:
            return _pin(repo, file=file, path=path)
        except git.GitCommandError as exc:
            detail = str(exc.stderr).strip() or str(exc)
            raise PinError(f"{path}: git failed while pinning the file: {detail}") from exc


def _pin(repo: git.Repo, *, file: Path, path: Path) -> PinnedFile:
    if repo.working_tree_dir is None:
        raise PinError(f"{path} is inside a bare repository, not a working tree")
    root = Path(repo.working_tree_dir).resolve()
    relative = file.relative_to(root).as_posix()
    revision = _head(repo, path)
    if not _run(repo, "ls-tree", "--name-only", "HEAD", "--", relative):
        raise PinError(f"{path} is not committed (untracked); add and commit it first")
    changed = _changed_tracked_files(repo)
    if relative in changed:
        raise PinError(
            f"{path} has uncommitted changes; commit them (and push) so the run uses "
            "exactly what you see, or discard them"
        )
    fetch_url = _fetch_url(repo, root=root, revision=revision, path=path)
    return PinnedFile(
        root=root,
        revision=revision,
        fetch_url=fetch_url,
        path=relative,
        uncommitted_elsewhere=tuple(sorted(changed - {relative})),
    )


def _head(repo: git.Repo, path: Path) -> str:
    try:
        return _run(repo, "rev-parse", "--verify", "HEAD^{commit}")
    except git.GitCommandError as exc:
        raise PinError(f"{path}: its repository has no commits yet") from exc


def _changed_tracked_files(repo: git.Repo) -> set[str]:
    """Tracked files whose index or working-tree content differs from HEAD."""
    out = _run(repo, "status", "--porcelain=v1", "-z", "--untracked-files=no")
    changed = set()
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        changed.add(entry[3:])
        if entry[0] in "RC":
            # Renames and copies are followed by the original path, which changed too.
            changed.add(next(entries, ""))
    changed.discard("")
    return changed


def _fetch_url(repo: git.Repo, *, root: Path, revision: str, path: Path) -> str:
    if "origin" not in [remote.name for remote in repo.remotes]:
        return root.as_uri()
    url = _run(repo, "remote", "get-url", "origin")
    if not _run(repo, "branch", "--remotes", "--contains", revision, "--list", "origin/*"):
        raise PinError(
            f"{path}: commit {revision[:12]} is not on any branch of origin, so worker pods "
            "cannot fetch it; push it first"
        )
    return _without_userinfo(_absolute(url, root=root))


def _absolute(url: str, *, root: Path) -> str:
    """A local-path remote as a file:// URL, resolved against the repository root."""
    if _SCHEME_RE.match(url) or _SCP_RE.match(url):
        return url
    return (root / url).resolve().as_uri()


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def _run(repo: git.Repo, *args: str) -> str:
    return str(repo.git.execute(["git", *args], kill_after_timeout=_LOCAL_TIMEOUT))
