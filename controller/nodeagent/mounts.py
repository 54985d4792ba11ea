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
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TERMINATION_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False

    @property
    def is_file(self) -> bool:
        return self.source.is_file()


class MountPoints:
    """Host paths the agent created to bind onto, removed when no pod needs them."""

    def __init__(self) -> None:
        self._users: dict[str, int] = {}
        self._created: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def acquire(self, mount: Mount) -> None:
        target = Path(mount.target)
        with self._lock:
            self._users[mount.target] = self._users.get(mount.target, 0) + 1
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
            self._created[mount.target] = [str(p) for p in missing]

    def release(self, mount: Mount) -> None:
        target = Path(mount.target)
        with self._lock:
            self._users[mount.target] -= 1
            if self._users[mount.target] > 0:
                return
            del self._users[mount.target]
            parents = self._created.pop(mount.target, None)
            if parents is None:
                return
            with contextlib.suppress(OSError):
                if target.is_dir():
                    target.rmdir()  # only succeeds when empty
                elif target.stat().st_size == 0:
                    target.unlink()
                for directory in reversed(parents):
                    if directory not in self._in_use():
                        Path(directory).rmdir()

    def _in_use(self) -> set[str]:
        """Directories other live mount points still need (they or their parents)."""
        needed = set(self._users)
        for target in self._users:
            needed.update(str(p) for p in Path(target).parents)
        return needed


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
