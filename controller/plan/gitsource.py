"""The DAG set of a git repository at a commit, or of its working tree, validated.

"Validated exactly as the controller would" means the same files and the same call:
the controller checks out a commit and runs `validate_paths` over its DAG folder with
the checkout as root. Reading blobs one by one would skip what a checkout does (file
modes, symbolic links, hidden folders) and drift from it, so a commit is exported with
`git archive` into a temporary directory and validated there, with problems named
relative to the repository root as the controller names them.

Every git command runs with a timeout; errors come back as `GitSourceError` with the
command's own message, never a traceback.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import git

from controller.spec.validate import ValidationReport, validate_paths

GIT_TIMEOUT = 60.0
DEFAULT_BRANCHES = ("main", "master")


class GitSourceError(Exception):
    """A revision or repository that cannot be read; the message says which and why."""


def open_repository(path: Path) -> git.Repo:
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise GitSourceError(f"{path} is not inside a git repository") from error


def _git(repo: git.Repo, *args: str) -> str:
    try:
        return str(repo.git.execute(["git", *args], kill_after_timeout=GIT_TIMEOUT)).strip()
    except git.GitCommandError as error:
        message = (error.stderr or "").strip().removeprefix("stderr: ").strip("'\n ")
        raise GitSourceError(f"git {args[0]} failed: {message or error}") from error


def resolve_revision(repo: git.Repo, revision: str) -> str:
    """The full commit id of `revision` (a branch, tag, sha or expression)."""
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except GitSourceError as error:
        raise GitSourceError(f"{revision!r} is not a commit of this repository") from error


def default_branch(repo: git.Repo) -> str:
    """origin's default branch when known, else the first of main/master that exists."""
    try:
        remote_head = _git(repo, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD")
    except GitSourceError:
        remote_head = ""
    if remote_head:
        return remote_head.removeprefix("refs/remotes/")
    for name in DEFAULT_BRANCHES:
        try:
            resolve_revision(repo, name)
        except GitSourceError:
            continue
        return name
    raise GitSourceError("no default branch (origin/HEAD, main or master): name BASE explicitly")


def merge_base(repo: git.Repo, first: str, second: str) -> str:
    return _git(repo, "merge-base", first, second)


def _dags_dir(root: Path, dags_path: str) -> Path:
    relative = PurePosixPath(dags_path)
    if relative.is_absolute() or ".." in relative.parts:
        raise GitSourceError(f"the DAG path {dags_path!r} must be relative, inside the repository")
    return root.joinpath(*relative.parts)


def working_tree_report(repo: git.Repo, *, dags_path: str) -> ValidationReport:
    """The DAG files as they are on disk now, committed or not."""
    root = Path(repo.working_tree_dir or ".")
    return validate_paths([_dags_dir(root, dags_path)], root=root)


def commit_report(repo: git.Repo, commit: str, *, dags_path: str) -> ValidationReport:
    """The DAG files of `commit`, validated as a checkout of it would be."""
    _dags_dir(Path("."), dags_path)  # refuse a path outside the repository early
    arguments = ["git", "archive", "--format=tar", commit]
    if dags_path not in ("", "."):
        arguments += ["--", dags_path]
    try:
        data = repo.git.execute(arguments, kill_after_timeout=GIT_TIMEOUT, stdout_as_string=False)
    except git.GitCommandError as error:
        stderr = (error.stderr or "").strip()
        if "did not match any files" in stderr:  # the DAG folder does not exist there
            data = b""
        else:
            raise GitSourceError(f"cannot read {commit[:12]}: {stderr or error}") from error
    with tempfile.TemporaryDirectory(prefix="kubedag-plan-") as directory:
        root = Path(directory)
        if data:
            with tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:") as archive:
                archive.extractall(root, filter="tar")
        dags_dir = _dags_dir(root, dags_path)
        dags_dir.mkdir(parents=True, exist_ok=True)
        return validate_paths([dags_dir], root=root)


def file_at(repo: git.Repo, revision: str | None, path: str) -> bytes | None:
    """A file's bytes at `revision` (None: the working tree); None when it is not there."""
    if revision is None:
        file = Path(repo.working_tree_dir or ".") / path
        return file.read_bytes() if file.is_file() else None
    if not _git(repo, "ls-tree", "--name-only", revision, "--", path):
        return None
    try:
        data = repo.git.execute(
            ["git", "show", f"{revision}:{path}"],
            kill_after_timeout=GIT_TIMEOUT,
            stdout_as_string=False,
        )
    except git.GitCommandError as error:
        raise GitSourceError(f"cannot read {path} at {revision[:12]}: {error.stderr}") from error
    return bytes(data)
