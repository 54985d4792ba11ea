"""The init container's checkout script, run for real against local repositories."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.executor.gitcheckout import CHECKOUT_SCRIPT, checkout_env
from tests.fixtures.httpserver import QuietHandler, Served


def git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME, so the machine's git config cannot change what the script does."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def base_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "kubedag",
        "GIT_AUTHOR_EMAIL": "kubedag@example.com",
        "GIT_COMMITTER_NAME": "kubedag",
        "GIT_COMMITTER_EMAIL": "kubedag@example.com",
    }


@pytest.fixture
def origin(tmp_path: Path, base_env: dict[str, str]) -> tuple[Path, list[str]]:
    """A bare repository with three commits on main; returns it and the SHAs, oldest first."""
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", ".", cwd=work, env=base_env)
    shas = []
    for number in range(3):
        (work / "version.txt").write_text(f"{number}\n", encoding="utf-8")
        git("add", "version.txt", cwd=work, env=base_env)
        git("commit", "-q", "-m", f"version {number}", cwd=work, env=base_env)
        shas.append(git("rev-parse", "HEAD", cwd=work, env=base_env))
    bare = tmp_path / "origin.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path, env=base_env)
    return bare, shas


def run_script(
    *,
    url: str,
    revision: str,
    target: Path,
    env: dict[str, str],
    extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    entries = checkout_env(
        repo_url=url,
        revision=revision,
        checkout_dir=str(target),
        secret_name=None,
        secret_key="token",
        username="x-access-token",
    )
    script_env = {**env, **{e["name"]: e["value"] for e in entries}, **(extra or {})}
    return subprocess.run(
        ["sh", "-c", CHECKOUT_SCRIPT],
        env=script_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_older_commit_is_checked_out_shallow_and_exactly(
    origin: tuple[Path, list[str]], tmp_path: Path, base_env: dict[str, str]
) -> None:
    bare, shas = origin
    target = tmp_path / "workspace" / "repo"
    done = run_script(url=bare.as_uri(), revision=shas[1], target=target, env=base_env)
    assert done.returncode == 0, done.stderr
    assert git("rev-parse", "HEAD", cwd=target, env=base_env) == shas[1]
    assert (target / "version.txt").read_text(encoding="utf-8") == "1\n"
    assert git("rev-list", "--count", "HEAD", cwd=target, env=base_env) == "1", "not shallow"


def test_running_the_checkout_again_over_its_own_result_converges(
    origin: tuple[Path, list[str]], tmp_path: Path, base_env: dict[str, str]
) -> None:
    bare, shas = origin
    target = tmp_path / "repo"
    first = run_script(url=bare.as_uri(), revision=shas[1], target=target, env=base_env)
    assert first.returncode == 0, first.stderr
    (target / "version.txt").write_text("changed by a half-finished run\n", encoding="utf-8")
    again = run_script(url=bare.as_uri(), revision=shas[1], target=target, env=base_env)
    assert again.returncode == 0, again.stderr
    assert git("rev-parse", "HEAD", cwd=target, env=base_env) == shas[1]
    assert (target / "version.txt").read_text(encoding="utf-8") == "1\n"


def test_a_server_refusing_fetch_by_sha_falls_back_to_a_full_fetch(
    origin: tuple[Path, list[str]], tmp_path: Path, base_env: dict[str, str], home: Path
) -> None:
    # Protocol v0 only serves advertised tips, like servers without
    # uploadpack.allowReachableSHA1InWant; v2 would serve the older commit directly.
    (home / ".gitconfig").write_text("[protocol]\n\tversion = 0\n", encoding="utf-8")
    bare, shas = origin
    target = tmp_path / "repo"
    done = run_script(url=bare.as_uri(), revision=shas[0], target=target, env=base_env)
    assert done.returncode == 0, done.stderr
    assert "fetching all branches and tags" in done.stderr
    assert git("rev-parse", "HEAD", cwd=target, env=base_env) == shas[0]
    assert (target / "version.txt").read_text(encoding="utf-8") == "0\n"


def test_a_commit_the_server_does_not_have_fails_the_checkout(
    origin: tuple[Path, list[str]], tmp_path: Path, base_env: dict[str, str]
) -> None:
    bare, _ = origin
    done = run_script(url=bare.as_uri(), revision="f" * 40, target=tmp_path / "r", env=base_env)
    assert done.returncode != 0


def test_shell_text_in_the_url_is_only_ever_a_url(
    origin: tuple[Path, list[str]], tmp_path: Path, base_env: dict[str, str]
) -> None:
    canary = tmp_path / "canary"
    url = f"{origin[0].as_uri()}; touch {canary}"
    done = run_script(url=url, revision=origin[1][0], target=tmp_path / "r", env=base_env)
    assert done.returncode != 0
    assert not canary.exists()


class _AuthRecorder(QuietHandler):
    """Demands Basic auth and records what git sends; never serves a repository."""

    seen: list[str]

    def do_GET(self) -> None:
        header = self.headers.get("Authorization")
        if header is not None:
            self.seen.append(header)
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="dags"')
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def auth_server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Recorder", (_AuthRecorder,), {"seen": seen})
    served = Served("127.0.0.1", handler)
    try:
        yield f"{served.url_base}/org/dags.git", seen
    finally:
        served.close()


def test_the_secret_token_is_sent_by_the_credential_helper_and_never_printed(
    auth_server: tuple[str, list[str]], tmp_path: Path, base_env: dict[str, str]
) -> None:
    url, seen = auth_server
    planted = "ghp_planted$(touch canary)'\"token"
    target = tmp_path / "repo"
    done = run_script(
        url=url,
        revision="a" * 40,
        target=target,
        env=base_env,
        extra={"KUBEDAG_GIT_USERNAME": "x-access-token", "KUBEDAG_GIT_PASSWORD": planted},
    )
    expected = "Basic " + base64.b64encode(f"x-access-token:{planted}".encode()).decode()
    assert expected in seen
    assert done.returncode != 0
    assert planted not in done.stdout + done.stderr
    assert planted not in (target / ".git" / "config").read_text(encoding="utf-8")
    assert not (target / "canary").exists()
