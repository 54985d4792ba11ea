"""Each source checkout's tests get a test cluster of their own, kept while it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.devcluster.testclusters import (
    FIRST_PORT_BASE,
    PORTS_PER_SLOT,
    checkout_cluster_config,
)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBEDAG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def checkout(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def test_two_checkouts_get_two_clusters_and_each_keeps_its_own(tmp_path: Path, cache: Path) -> None:
    first, second = checkout(tmp_path, "main"), checkout(tmp_path, "worktree")
    one = checkout_cluster_config(first, environ={})
    two = checkout_cluster_config(second, environ={})
    assert (one.data_dir, one.port_base) == (cache / "clusters" / "test-0", FIRST_PORT_BASE)
    assert (two.data_dir, two.port_base) == (
        cache / "clusters" / "test-1",
        FIRST_PORT_BASE + PORTS_PER_SLOT,
    )
    assert checkout_cluster_config(first / ".", environ={}) == one


def test_the_slot_of_a_checkout_that_is_gone_goes_to_the_next_new_one(tmp_path: Path) -> None:
    gone, kept = checkout(tmp_path, "clone"), checkout(tmp_path, "kept")
    taken = checkout_cluster_config(gone, environ={})
    checkout_cluster_config(kept, environ={})
    gone.rmdir()
    again = checkout_cluster_config(checkout(tmp_path, "fresh-clone"), environ={})
    assert again.port_base == taken.port_base


def test_the_environment_names_another_cluster_with_both_settings(tmp_path: Path) -> None:
    named = {"KUBEDAG_TEST_CLUSTER_DIR": str(tmp_path / "c"), "KUBEDAG_TEST_PORT_BASE": "27000"}
    config = checkout_cluster_config(tmp_path, environ=named)
    assert (config.data_dir, config.port_base) == (tmp_path / "c", 27000)
    with pytest.raises(ValueError, match="together"):
        checkout_cluster_config(tmp_path, environ={"KUBEDAG_TEST_PORT_BASE": "27000"})
