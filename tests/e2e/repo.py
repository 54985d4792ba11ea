"""A bare git repository served by file:// URL, and a clone to commit DAG files in.

Worker pods' init containers fetch the run's commit from the repository's URL; a bare
repository on the local disk is what a process-mode node agent can reach, and a clone
whose `origin` is that repository is what `kubedag run` pins files in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "sample-dags"


class Repository:
    def __init__(self, root: Path) -> None:
        self.bare = root / "origin.git"
        self.clone = root / "work"
        self.url = f"file://{self.bare}"
        _git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        _git(root, "clone", "-q", self.url, str(self.clone))
        _git(self.clone, "checkout", "-q", "-b", "main")

    def add_samples(self) -> None:
        shutil.copytree(SAMPLES, self.clone / "sample-dags")

    def commit(self, message: str) -> str:
        """Commit everything in the clone and push it; returns the commit."""
        _git(self.clone, "add", "-A")
        _git(self.clone, "commit", "-q", "-m", message)
        _git(self.clone, "push", "-q", "origin", "main")
        return _git(self.clone, "rev-parse", "HEAD")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=kubedag", "-c", "user.email=kubedag@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
