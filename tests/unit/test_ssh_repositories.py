"""An SSH repository is refused when the controller starts, saying why and what to use.

Worker pods check out each run's commit with an HTTPS token only, so a controller that
synced an SSH URL would start, and every task would then fail in its checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.gitsync.settings import is_ssh_url


@pytest.mark.parametrize(
    "url",
    ["ssh://git@example.org/dags.git", "git+ssh://example.org/dags", "git@example.org:org/d.git"],
)
def test_ssh_urls_are_recognised(url: str) -> None:
    assert is_ssh_url(url)


@pytest.mark.parametrize(
    "url", ["https://example.org/dags.git", "file:///srv/dags", "/srv/dags", "dags"]
)
def test_other_urls_are_not_ssh(url: str) -> None:
    assert not is_ssh_url(url)


@pytest.mark.parametrize(
    ("settings", "shown"),
    [
        ({"KUBEDAG_GIT_URL": "ssh://git@example.org/dags.git"}, "ssh://***@example.org/dags.git"),
        ({"KUBEDAG_GIT_URL": "git@example.org:org/dags.git"}, "git@example.org:org/dags.git"),
    ],
)
def test_the_controller_refuses_an_ssh_repository_at_start(
    tmp_path: Path, settings: dict[str, str], shown: str
) -> None:
    refusal = start_controller(tmp_path, settings)
    assert f"git.url: {shown} is reached over SSH" in refusal
    assert "Use the repository's https:// URL" in refusal


def test_the_controller_refuses_an_ssh_key_with_an_https_url_naming_the_setting(
    tmp_path: Path,
) -> None:
    config = tmp_path / "kubedag.yaml"
    config.write_text("git: {url: 'https://example.org/dags.git', sshKeyFile: /keys/id}\n")
    refusal = start_controller(tmp_path, {"KUBEDAG_CONFIG": str(config)})
    assert "git.sshKeyFile: set, but SSH repositories are not supported" in refusal
    assert "and remove git.sshKeyFile" in refusal


def start_controller(tmp_path: Path, settings: dict[str, str]) -> str:
    """Start the controller, which must refuse to; what it said."""
    env = {
        **{name: value for name, value in os.environ.items() if name != "KUBEDAG_CONFIG"},
        "KUBEDAG_DATABASE_URL": f"sqlite:///{tmp_path / 'kubedag.db'}",
        "KUBEDAG_DATA_DIR": str(tmp_path),
        "KUBEDAG_LEADER_ELECTION": "false",
        **settings,
    }
    done = subprocess.run(
        [sys.executable, "-m", "controller", "controller", "--migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr
