"""The node agent's mount points: counted per real path, shared by every agent on the host.

A bind target a pod is about to mount on must exist until that pod is done, whatever
other pods, under other names for the same directory or in other agents, release.
These tests drive the bookkeeping on temporary paths (no mounts are made).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.nodeagent.mounts import Mount, MountPoints, process_identity


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "mount-points.json"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A fake host root where `var/run` links to `run`, as on Debian."""
    root = tmp_path / "host"
    (root / "run").mkdir(parents=True)
    (root / "var").mkdir()
    (root / "var" / "run").symlink_to(root / "run")
    return root


@pytest.fixture
def other_agent() -> Iterator[str]:
    """The identity of another live process, standing for a second node agent."""
    process = subprocess.Popen(["sleep", "300"])
    try:
        identity = process_identity(process.pid)
        assert identity is not None
        yield identity
    finally:
        process.kill()
        process.wait(timeout=10)


def directory(target: Path) -> Mount:
    return Mount(source=Path("/nonexistent-source"), target=str(target))


def test_two_names_of_one_directory_share_one_count(host: Path, state_file: Path) -> None:
    points = MountPoints(state_file)
    via_link = directory(host / "var" / "run" / "secrets" / "sa")
    direct = directory(host / "run" / "secrets" / "sa")
    points.acquire(via_link)
    points.acquire(direct)
    points.release(via_link)
    assert (host / "run" / "secrets" / "sa").is_dir()
    assert points.in_use() == {str(host / "run" / "secrets" / "sa"): 1}
    points.release(direct)
    assert not (host / "run" / "secrets").exists()
    assert points.in_use() == {}


def test_one_agent_does_not_remove_what_anothers_pods_use(
    host: Path, state_file: Path, other_agent: str
) -> None:
    first = MountPoints(state_file, owner=other_agent)
    second = MountPoints(state_file)
    mount = directory(host / "workspace")
    first.acquire(mount)
    second.acquire(mount)
    first.release(mount)
    assert (host / "workspace").is_dir()
    second.release(mount)
    assert not (host / "workspace").exists()


def test_the_share_of_an_agent_that_died_is_dropped(host: Path, state_file: Path) -> None:
    dead = MountPoints(state_file, owner="999999999:1")
    dead.acquire(directory(host / "left" / "behind"))
    live = MountPoints(state_file)
    assert live.in_use() == {}
    assert not (host / "left").exists()


def test_paths_that_existed_before_are_never_removed(host: Path, state_file: Path) -> None:
    (host / "run" / "existing").mkdir()
    points = MountPoints(state_file)
    mount = directory(host / "run" / "existing")
    points.acquire(mount)
    points.release(mount)
    assert (host / "run" / "existing").is_dir()


def test_a_parent_made_for_one_mount_point_goes_with_the_last_under_it(
    host: Path, state_file: Path
) -> None:
    points = MountPoints(state_file)
    first, second = directory(host / "x" / "a"), directory(host / "x" / "b")
    points.acquire(first)
    points.acquire(second)
    points.release(first)
    assert (host / "x" / "b").is_dir()
    points.release(second)
    assert not (host / "x").exists()


def test_a_file_target_is_made_as_a_file_and_removed_empty(
    tmp_path: Path, host: Path, state_file: Path
) -> None:
    source = tmp_path / "message"
    source.write_text("")
    mount = Mount(source=source, target=str(host / "dev" / "termination-log"))
    points = MountPoints(state_file)
    points.acquire(mount)
    assert (host / "dev" / "termination-log").is_file()
    points.release(mount)
    assert not (host / "dev").exists()


def test_releasing_what_was_never_acquired_is_an_error(host: Path, state_file: Path) -> None:
    with pytest.raises(ValueError, match="was not acquired"):
        MountPoints(state_file).release(directory(host / "never"))


def test_a_held_mount_point_exists_whatever_other_users_release(
    host: Path, state_file: Path, other_agent: str
) -> None:
    """Pods under both names, in two agents, acquire and release at once; every pod
    finds its mount point in place for as long as it holds it."""
    agents = [MountPoints(state_file), MountPoints(state_file, owner=other_agent)]
    names = [host / "var" / "run" / "secrets" / "sa", host / "run" / "secrets" / "sa"]
    missing: list[str] = []

    def pod(index: int) -> None:
        for round_ in range(60):
            mount = directory(names[(index + round_) % 2])
            agent = agents[index % 2]
            agent.acquire(mount)
            if not Path(mount.target).is_dir():
                missing.append(mount.target)
            agent.release(mount)

    threads = [threading.Thread(target=pod, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert missing == []
    assert not (host / "run" / "secrets").exists()
