"""Per-pod volumes and the bind mounts that put them where the containers expect them.

Process-mode containers must see `/workspace` (an emptyDir) and
`/dev/termination-log` as real paths, yet pods on one machine must not see each
other's files. As root, each container runs in its own mount namespace
(`unshare --mount --propagation private`) where per-pod directories are bind-mounted
onto the mount paths. Bind targets must exist on the host, so missing ones are created
and reference-counted, and removed only when the last pod using them is done and they
are still empty: nothing that existed before is ever touched. Without root there are no
mount namespaces: the working directory is rewritten to the per-pod directory and the
agent says so.

Two traps shape the bookkeeping. One directory has many names (`/var/run` is a link
to `/run`, so `/var/run/secrets/...` and `/run/secrets/...` are one mount point):
counts are kept per real path, or the release of one name removes the directory
under a pod still about to mount on the other; and removing a directory that is a
mount point in another pod's namespace detaches that pod's mount (Linux does so
since 3.18), so a still-running pod loses its working directory. And several node
agents may share the host (the test cluster's and `kubedag dev`'s): the counts live
in one state file under an exclusive lock, each agent's share under its own process
identity, so one agent never removes what another's pods use, and the share of an
agent that died is dropped by the next one to look.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
DEFAULT_STATE_FILE = Path("/run/kubedag/node-agent-mount-points.json")


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False

    @property
    def is_file(self) -> bool:
        return self.source.is_file()


def process_identity(pid: int) -> str | None:
    """`pid:start-time` of a live process (a reused PID has another start time)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it don't.
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


def _alive(owner: str) -> bool:
    pid = owner.split(":", 1)[0]
    return pid.isdigit() and process_identity(int(pid)) == owner


class MountPoints:
    """Host paths the agents created to bind onto, removed when no pod of any agent
    needs them (see the module docstring)."""

    def __init__(self, state_file: Path = DEFAULT_STATE_FILE, *, owner: str | None = None) -> None:
        self._state_file = state_file
        self._owner = owner or process_identity(os.getpid()) or str(os.getpid())
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        """The shared state, read and written back under the lock of every agent."""
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self._state_file.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                text = self._state_file.read_text() if self._state_file.exists() else ""
                state: dict[str, Any] = json.loads(text) if text else {}
                self._forget_the_dead(state)
                yield state
                temporary = self._state_file.with_suffix(".tmp")
                temporary.write_text(json.dumps(state))
                temporary.replace(self._state_file)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def acquire(self, mount: Mount) -> None:
        real = os.path.realpath(mount.target)
        with self._state() as state:
            entry = state.setdefault(real, {"created": [], "made": False, "users": {}})
            users = entry["users"]
            users[self._owner] = users.get(self._owner, 0) + 1
            target = Path(real)
            if target.exists():
                return
            # Record every directory made on the way, so release leaves no trace.
            missing = [p for p in reversed(target.parents) if not p.exists()]
            for directory in missing:
                directory.mkdir()
            if mount.is_file:
                target.touch()
            else:
                target.mkdir()
            entry["created"] = entry["created"] + [str(p) for p in missing]
            entry["made"] = True

    def release(self, mount: Mount) -> None:
        real = os.path.realpath(mount.target)
        with self._state() as state:
            entry = state.get(real)
            if entry is None or self._owner not in entry["users"]:
                raise ValueError(f"{mount.target} was not acquired by this node agent")
            entry["users"][self._owner] -= 1
            if entry["users"][self._owner] == 0:
                del entry["users"][self._owner]
            if not entry["users"]:
                _remove(state, real)

    def in_use(self) -> dict[str, int]:
        """Every mount point some agent holds, with how many uses (all agents)."""
        with self._state() as state:
            return {real: sum(entry["users"].values()) for real, entry in state.items()}

    @staticmethod
    def _forget_the_dead(state: dict[str, Any]) -> None:
        for real, entry in list(state.items()):
            entry["users"] = {o: n for o, n in entry["users"].items() if _alive(o)}
            if not entry["users"]:
                _remove(state, real)


def _remove(state: dict[str, Any], real: str) -> None:
    """Drop an unused mount point, and what was made for it if nothing else needs it.

    A directory made for it that another mount point still lies under is handed to
    that one, to be removed when it goes.
    """
    entry = state.pop(real)
    target = Path(real)
    if entry["made"]:
        with contextlib.suppress(OSError):
            if target.is_dir():
                target.rmdir()  # only succeeds when empty
            elif target.stat().st_size == 0:
                target.unlink()
    for directory in reversed(entry["created"]):
        heirs = [other for other in state if directory in map(str, Path(other).parents)]
        if not heirs:
            with contextlib.suppress(OSError):
                Path(directory).rmdir()
            continue
        for heir in heirs:
            if directory not in state[heir]["created"]:
                state[heir]["created"] = [directory, *state[heir]["created"]]


def isolated() -> bool:
    return os.geteuid() == 0


def wrap(argv: list[str], *, mounts: list[Mount], workdir: str) -> list[str]:
    """The command line that runs `argv` with `mounts` in place and `workdir` as cwd."""
    lines = ["set -e"]
    for mount in mounts:
        source, target = shlex.quote(str(mount.source)), shlex.quote(mount.target)
        lines.append(f"mount --bind {source} {target}")
        if mount.read_only:
            lines.append(f"mount -o remount,bind,ro {target}")
    lines.append(f"cd {shlex.quote(workdir)}")
    lines.append('exec "$@"')
    script = "\n".join(lines)
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *argv]


def rewrite(path: str, mounts: list[Mount]) -> str:
    """Without mount namespaces: the host path that stands for `path` inside the pod."""
    for mount in sorted(mounts, key=lambda m: len(m.target), reverse=True):
        if path == mount.target or path.startswith(mount.target.rstrip("/") + "/"):
            return str(mount.source) + path[len(mount.target.rstrip("/")) :]
    return path
