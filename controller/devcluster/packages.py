"""Debian packages the real node and the image builds need, installed on first use.

containerd, runc, the CNI plugins, buildah and debootstrap are Debian packages that
install in seconds; a fresh machine gets them the first time they are needed, as root,
and anyone else gets the exact `apt-get install` line to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

from controller.devcluster.readiness import ClusterError

APT_TIMEOUT = 1200.0


def missing(packages: Sequence[str]) -> list[str]:
    absent = []
    for package in packages:
        shown = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if shown.stdout.strip() != "installed":
            absent.append(package)
    return absent


def ensure(packages: Sequence[str], *, why: str, log: Callable[[str], None]) -> None:
    """Install whichever of `packages` is missing, or say how to."""
    if shutil.which("dpkg-query") is None:
        raise ClusterError(f"{why} needs Debian packages: {' '.join(packages)}")
    absent = missing(packages)
    if not absent:
        return
    if os.geteuid() != 0:
        raise ClusterError(
            f"{why} needs Debian packages that are missing; as root run: "
            f"apt-get install {' '.join(absent)}"
        )
    log(f"installing {' '.join(absent)} ({why})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", *absent],
    ):
        result = subprocess.run(
            argv, check=False, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT
        )
        if result.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}")
