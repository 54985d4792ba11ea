"""A real git repository of DAG files for plan tests, committed with the git command line."""

from __future__ import annotations

import subprocess
from pathlib import Path


class DagRepo:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=kubedag", "-c", "user.email=kubedag@example.com", *args],
            cwd=self.root,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()

    def write(self, path: str, text: str) -> None:
        file = self.root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")

    def remove(self, path: str) -> None:
        (self.root / path).unlink()

    def move(self, old: str, new: str) -> None:
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", old, new)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


def dag_text(
    name: str,
    *,
    schedule: str | None = '"0 3 * * *"',
    extra_spec: str = "",
    defaults: str = "    image: python:3.12-slim",
    tasks: str | None = None,
) -> str:
    """A DAG file; `extra_spec` lines go under spec (indented two spaces)."""
    lines = [
        "apiVersion: kubedag.io/v1",
        "kind: DAG",
        "metadata:",
        f"  name: {name}",
        "spec:",
    ]
    if schedule is not None:
        lines.append(f"  schedule: {schedule}")
    lines.extend(extra_spec.splitlines())
    lines.append("  defaults:")
    lines.extend(defaults.splitlines())
    lines.append("  tasks:")
    lines.extend(
        (
            tasks
            or """\
    - name: extract
      command: [python3, extract.py]
    - name: load
      dependsOn: [extract]
      command: [python3, load.py]"""
        ).splitlines()
    )
    return "\n".join(lines) + "\n"
