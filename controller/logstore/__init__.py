"""Where worker pods' logs live after their pods are gone.

Logs live on the node and vanish with the pod, and users read them long after: the
executor copies each finished pod's container logs here before it lets the pod go (the
pod's result finalizer holds it until then). One object per (run, task, item, try,
container), under a fixed layout, so `kubedag logs` finds them without an index and a
re-store after a crash simply overwrites the same object.

The store is a local directory by default (a PersistentVolume in the cluster) and any
fsspec URL when configured (``s3://bucket/prefix``, ``gs://...``, ``file://``,
``memory://``), so object storage needs no code of ours, only its fsspec package. Writes
to a directory go through a temporary file and a rename, so a reader never sees half a
log; object stores make a single put atomic themselves.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from controller.base.tries import TryKey

_SUFFIX = ".log"


@dataclass(frozen=True)
class LogKey:
    """One container's log of one try."""

    try_key: TryKey
    container: str

    @property
    def relative_path(self) -> str:
        return posixpath.join(try_prefix(self.try_key), self.container + _SUFFIX)


def try_prefix(key: TryKey) -> str:
    """The folder of one try's logs; task names are DNS labels, so safe as path parts."""
    return posixpath.join(
        f"run-{key.run_id}", key.task, f"item-{key.item_index}", f"try-{key.try_number}"
    )


class LogStore:
    """Container logs by :class:`LogKey` under ``location`` (a directory or fsspec URL)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._local = "://" not in location or location.startswith("file://")
        fs, root = fsspec.core.url_to_fs(location)
        self._fs: Any = fs
        self._root = str(root).rstrip("/") or "/"

    def write(self, key: LogKey, text: str) -> None:
        data = text.encode("utf-8")
        path = self._path(key.relative_path)
        if self._local:
            _write_atomically(Path(path), data)
        else:
            self._fs.pipe_file(path, data)

    def exists(self, key: LogKey) -> bool:
        """A log is stored for ``key``."""
        return bool(self._fs.exists(self._path(key.relative_path)))

    def read(self, key: LogKey) -> str | None:
        """The stored log, or None when nothing was stored for ``key``."""
        try:
            data: bytes = self._fs.cat_file(self._path(key.relative_path))
        except FileNotFoundError:
            return None
        return data.decode("utf-8", "replace")

    def containers(self, key: TryKey) -> list[str]:
        """Containers with a stored log for this try, sorted by name."""
        prefix = self._path(try_prefix(key))
        try:
            names = self._fs.ls(prefix, detail=False)
        except FileNotFoundError:
            return []
        found = [posixpath.basename(str(name).rstrip("/")) for name in names]
        return sorted(name[: -len(_SUFFIX)] for name in found if name.endswith(_SUFFIX))

    def delete_run(self, run_id: int) -> bool:
        """Delete every stored log of one run; False when it had none."""
        path = self._path(f"run-{run_id}")
        try:
            self._fs.rm(path, recursive=True)
        except FileNotFoundError:
            return False
        return True

    def _path(self, relative: str) -> str:
        return posixpath.join(self._root, relative)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
