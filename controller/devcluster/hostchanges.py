"""A journal of what a real node changes on the host, so `down` can put it all back.

A kubelet and containerd are not contained the way the control plane is: the kubelet
sets sysctls (`vm.overcommit_memory`, `kernel.panic`, ...), the CNI bridge plugin makes
a bridge and turns on IP forwarding, and both create directories outside the data dir
(`/var/log/pods`, `/run/containerd`, `/run/netns`, ...). Every such change is written to
the journal *before* it can happen, with the value found, and the journal is flushed at
once, so even after a crash half-way through `up` the next `down` knows what to undo.
Only what was absent or different before is undone: a directory that existed stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IP_TIMEOUT = 10.0


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str:
    return sysctl_path(name).read_text().strip()


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below `root`, deepest first (the order to unmount them)."""
    found = []
    prefix = str(root).rstrip("/") + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(root) or point.startswith(prefix):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all(root: Path) -> None:
    for point in mounts_under(root):
        subprocess.run(["umount", "-l", str(point)], check=False, timeout=IP_TIMEOUT)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], check=False, capture_output=True, text=True, timeout=IP_TIMEOUT
    )


def has_address(device: str, cidr: str) -> bool:
    shown = _ip("-o", "addr", "show", "dev", device).stdout
    return f" {cidr} " in shown


def has_link(name: str) -> bool:
    return _ip("link", "show", name).returncode == 0


@dataclass
class HostChanges:
    """The journal at `path`; each `record_*` call is durable before it returns."""

    path: Path

    def _load(self) -> list[dict[str, Any]]:
        try:
            entries: list[dict[str, Any]] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return entries

    def _append(self, entry: dict[str, Any]) -> None:
        entries = self._load()
        if entry in entries:
            return
        entries.append(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        os.replace(tmp, self.path)

    def entries(self) -> list[dict[str, Any]]:
        return self._load()

    def add_address(self, device: str, cidr: str) -> None:
        """Put `cidr` on `device` unless it is there; only an address added here is removed."""
        if has_address(device, cidr):
            return
        self._append({"kind": "address", "device": device, "cidr": cidr})
        result = _ip("addr", "add", cidr, "dev", device)
        if result.returncode != 0 and not has_address(device, cidr):
            raise OSError(f"ip addr add {cidr} dev {device}: {result.stderr.strip()}")

    def expect_link(self, name: str) -> None:
        """A network link something started here will create (the CNI bridge)."""
        if not has_link(name):
            self._append({"kind": "link", "name": name})

    def expect_sysctl(self, name: str) -> None:
        """A sysctl something started here may set; its value now is put back later."""
        if any(e["kind"] == "sysctl" and e["name"] == name for e in self._load()):
            return
        self._append({"kind": "sysctl", "name": name, "value": read_sysctl(name)})

    def expect_dir(self, path: Path) -> None:
        """A directory something started here may create; removed later if absent now."""
        if not path.exists():
            self._append({"kind": "dir", "path": str(path)})

    def expect_cgroup(self, path: Path) -> None:
        """A cgroup something started here may create; removed later (with any child
        cgroups left in it) if absent now."""
        if not path.exists():
            self._append({"kind": "cgroup", "path": str(path)})

    def restore(self) -> list[str]:
        """Undo every journalled change, newest first; returns what was undone."""
        undone = []
        for entry in reversed(self._load()):
            kind = entry["kind"]
            if kind == "address" and has_address(entry["device"], entry["cidr"]):
                _ip("addr", "del", entry["cidr"], "dev", entry["device"])
                undone.append(f"address {entry['cidr']} on {entry['device']}")
            elif kind == "link" and has_link(entry["name"]):
                _ip("link", "delete", entry["name"])
                undone.append(f"link {entry['name']}")
            elif kind == "sysctl" and read_sysctl(entry["name"]) != entry["value"]:
                sysctl_path(entry["name"]).write_text(entry["value"] + "\n")
                undone.append(f"{entry['name']}={entry['value']}")
            elif kind == "cgroup" and Path(entry["path"]).exists():
                # A cgroup is removed with rmdir, children first; its files go with it.
                for folder in sorted(
                    (p for p in Path(entry["path"]).rglob("*") if p.is_dir()),
                    key=lambda p: len(p.parts),
                    reverse=True,
                ):
                    with contextlib.suppress(OSError):
                        folder.rmdir()
                with contextlib.suppress(OSError):
                    Path(entry["path"]).rmdir()
                undone.append(f"cgroup {entry['path']}")
            elif kind == "dir" and Path(entry["path"]).exists():
                unmount_all(Path(entry["path"]))
                shutil.rmtree(entry["path"], ignore_errors=True)
                undone.append(f"directory {entry['path']}")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        return undone
