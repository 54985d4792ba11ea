"""Start and stop the control plane's processes by recorded PID, never by name.

Several clusters (and other people's processes) share the machine, so `down` must stop
exactly what `up` started: each process gets a PID file naming its PID and executable,
and a PID only counts as ours while /proc/PID/exe still points at that executable (a
recycled PID belongs to someone else). Processes run in their own session so they
outlive the `kubedag dev-cluster up` that started them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

# Popen objects of processes this Python process started, so stopped children are
# reaped instead of lingering as zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def running_pid(run_dir: Path, name: str) -> int | None:
    """The PID of the recorded process if it is still the one we started."""
    path = _pid_file(run_dir, name)
    try:
        pid_text, exe = path.read_text().splitlines()[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return None
    try:
        if os.readlink(f"/proc/{pid}/exe") != exe:
            return None
    except OSError:
        return None
    return pid


def start(
    *, run_dir: Path, log_dir: Path, name: str, argv: list[str], env: dict[str, str] | None = None
) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _children[proc.pid] = proc
    exe = os.path.realpath(argv[0])
    _pid_file(run_dir, name).write_text(f"{proc.pid}\n{exe}\n")
    return proc.pid


def exited_early(pid: int) -> int | None:
    """The exit code of a child started here that has already died, else None."""
    child = _children.get(pid)
    return None if child is None else child.poll()


def stop(*, run_dir: Path, name: str, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`. True if something was stopped."""
    pid = running_pid(run_dir, name)
    _pid_file(run_dir, name).unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)
    _children.pop(pid, None)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    child = _children.get(pid)
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                return True
        elif not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False
