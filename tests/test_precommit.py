"""The pre-commit hook works for other repositories, run by the real `pre-commit` tool.

`pre-commit try-repo` installs this project into a fresh environment exactly as a
user's `repo:` entry would, so a broken hook definition, entry point or package-data
declaration (the schema file) fails here rather than in someone's commit. The
project is snapshotted into one commit first so that both runs share one installed
environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"
SNAPSHOT_FILES = ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "controller")

GOOD = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata:
  name: good
spec:
  tasks:
    - {name: hello, image: busybox, command: [echo, hello]}
"""
BAD = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata:
  name: bad
spec:
  tasks:
    - {name: hello, image: busybox, dependsOn: [nobody]}
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _snapshot(target: Path) -> Path:
    target.mkdir()
    for name in SNAPSHOT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    _git(target, "init", "-q")
    _git(target, "add", ".")
    _git(target, "commit", "-q", "-m", "snapshot")
    return target


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _snapshot(tmp_path_factory.mktemp("hook") / "kubedag")


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def _try_repo(
    hook_repo: Path, home: Path, user_repo: Path, *files: str
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run(
        [str(PRE_COMMIT), "try-repo", str(hook_repo), "kubedag-validate", "--files", *files],
        cwd=user_repo,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _user_repo(path: Path) -> Path:
    path.mkdir()
    (path / "dags").mkdir()
    (path / "dags" / "good.yaml").write_text(GOOD)
    (path / "dags" / "bad.yaml").write_text(BAD)
    (path / "deployment.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n")
    _git(path, "init", "-q")
    _git(path, "add", ".")
    return path


@pytest.mark.timeout(900)
def test_hook_passes_good_dags_and_fails_bad_ones_with_the_position(
    hook_repo: Path, pre_commit_home: Path, tmp_path: Path
) -> None:
    user_repo = _user_repo(tmp_path / "user")

    passed = _try_repo(hook_repo, pre_commit_home, user_repo, "dags/good.yaml", "deployment.yaml")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "kubedag validate" in passed.stdout
    assert "Passed" in passed.stdout

    failed = _try_repo(hook_repo, pre_commit_home, user_repo, "dags/good.yaml", "dags/bad.yaml")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Failed" in failed.stdout
    assert (
        "dags/bad.yaml:7:49: dependsOn names 'nobody', which is not a task (hello) "
        "(spec.tasks[0].dependsOn[0])" in failed.stdout
    )
    assert "good.yaml:" not in failed.stdout
