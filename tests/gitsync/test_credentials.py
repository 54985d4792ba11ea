"""Credentials reach git through files only: never the URL, config, arguments or logs."""

from __future__ import annotations

import logging
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.gitsync import GitSync, GitSyncConfig, GitSyncError, HttpsAuth
from controller.gitsync.credentials import GitCredentials, redact_url_userinfo
from controller.gitsync.settings import GitSyncConfigError
from tests.gitsync.conftest import Remote
from tests.gitsync.httpgit import serve_git

TOKEN = "ghp_Zq7SuperSecretTokenValue42"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret" / "token"
    path.parent.mkdir()
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port held bound but not listening, so no one else can listen on it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def _everything_written_under(root: Path) -> str:
    texts = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def test_token_appears_nowhere_when_the_fetch_fails(
    tmp_path: Path, token_file: Path, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = GitSyncConfig(
        repo_url=f"https://127.0.0.1:{closed_port}/repo.git",
        root=tmp_path / "sync",
        auth=HttpsAuth(token_file=token_file),
        command_timeout=10.0,
    )
    sync = GitSync(config)
    with pytest.raises(GitSyncError) as caught:
        sync.sync_once()
    status = sync.status()
    assert status.last_error
    assert str(closed_port) in status.last_error
    for text in (
        str(caught.value),
        repr(caught.value),
        status.last_error,
        caplog.text,
        (tmp_path / "sync" / "cache.git" / "config").read_text(),
        _everything_written_under(tmp_path / "sync"),
    ):
        assert TOKEN not in text


def test_git_environment_names_files_but_holds_no_secret(tmp_path: Path, token_file: Path) -> None:
    credentials = GitCredentials(HttpsAuth(token_file=token_file), state_dir=tmp_path / "auth")
    env = credentials.env()
    assert all(TOKEN not in value for value in env.values())
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["KUBEDAG_GIT_PASSWORD_FILE"] == str(token_file.resolve())
    askpass = Path(env["GIT_ASKPASS"])
    assert stat.S_IMODE(askpass.stat().st_mode) == 0o700


def test_a_token_file_authenticates_against_a_real_http_server(
    tmp_path: Path,
    remote: Remote,
    token_file: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    # git's trace records the arguments of every process it starts, askpass included.
    trace = tmp_path / "git-trace.log"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    sha = remote.commit({"a.yaml": "a\n"})
    with serve_git(remote.bare.parent, username="x-access-token", password=TOKEN) as base:
        config = GitSyncConfig(
            repo_url=f"{base}/{remote.bare.name}",
            root=tmp_path / "sync",
            auth=HttpsAuth(token_file=token_file),
            command_timeout=20.0,
        )
        assert GitSync(config).sync_once().revision == sha
    assert TOKEN not in _everything_written_under(tmp_path / "sync")
    assert TOKEN not in caplog.text
    assert "askpass.sh" in trace.read_text()
    assert TOKEN not in trace.read_text()


def test_username_and_password_files_authenticate(tmp_path: Path, remote: Remote) -> None:
    sha = remote.commit({"a.yaml": "a\n"})
    user, password = tmp_path / "user", tmp_path / "password"
    user.write_text("deploy-bot\n")
    password.write_text("hunter2-but-longer\n")
    with serve_git(remote.bare.parent, username="deploy-bot", password="hunter2-but-longer") as b:
        config = GitSyncConfig(
            repo_url=f"{b}/{remote.bare.name}",
            root=tmp_path / "sync",
            auth=HttpsAuth(username_file=user, password_file=password),
        )
        assert GitSync(config).sync_once().revision == sha


def test_a_wrong_token_fails_without_showing_it(
    tmp_path: Path, remote: Remote, token_file: Path
) -> None:
    remote.commit({"a.yaml": "a\n"})
    with serve_git(remote.bare.parent, username="x-access-token", password="other") as base:
        config = GitSyncConfig(
            repo_url=f"{base}/{remote.bare.name}",
            root=tmp_path / "sync",
            auth=HttpsAuth(token_file=token_file),
        )
        with pytest.raises(GitSyncError) as caught:
            GitSync(config).sync_once()
    assert TOKEN not in str(caught.value)


def test_a_git_command_that_hangs_is_killed_at_the_timeout(
    tmp_path: Path, silent_port: int
) -> None:
    config = GitSyncConfig(
        repo_url=f"http://127.0.0.1:{silent_port}/repo.git",
        root=tmp_path / "sync",
        command_timeout=1.0,
    )
    started = time.monotonic()
    with pytest.raises(GitSyncError, match="did not complete"):
        GitSync(config).sync_once()
    assert time.monotonic() - started < 8


def test_credentials_in_the_url_are_refused(tmp_path: Path) -> None:
    with pytest.raises(GitSyncConfigError, match="must not contain credentials"):
        GitSyncConfig(repo_url=f"https://bot:{TOKEN}@example.com/r.git", root=tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fatal: https://u:p@host/r.git gone", "fatal: https://***@host/r.git gone"),
        ("see http://token@host/x", "see http://***@host/x"),
        ("ssh://git@host/r.git", "ssh://***@host/r.git"),
        ("no url here", "no url here"),
    ],
)
def test_url_userinfo_is_redacted(text: str, expected: str) -> None:
    assert redact_url_userinfo(text) == expected


def test_error_text_is_scrubbed_of_secret_file_contents(tmp_path: Path, token_file: Path) -> None:
    credentials = GitCredentials(HttpsAuth(token_file=token_file), state_dir=tmp_path)
    assert credentials.scrub(f"server said {TOKEN}") == "server said ***"
