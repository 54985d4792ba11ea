"""Fixtures for end-to-end runs: a repository, a controller config, and the `kubedag` CLI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.store import Store, upgrade
from tests.e2e.repo import Repository


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    repo = Repository(tmp_path)
    repo.add_samples()
    repo.commit("sample DAGs")
    return repo


@pytest.fixture
def database_file(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'kubedag.db'}"
    upgrade(url)
    return url


@pytest.fixture
def controller_env(
    tmp_path: Path,
    namespace: str,
    cluster: Any,
    database_file: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Environment for `kubedag` pointing at the test cluster, namespace and database."""
    config = {
        "instance": f"e2e-{uuid.uuid4().hex[:8]}",
        "logStore": str(tmp_path / "logs"),
        "executor": {"namespaces": [namespace], "reconcileInterval": "5s"},
    }
    path = tmp_path / "kubedag.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        "KUBEDAG_CONFIG": str(path),
        "KUBEDAG_DATABASE_URL": database_file,
        "KUBECONFIG": str(cluster.kubeconfig),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def e2e_store(database_file: str) -> Iterator[Store]:
    store = Store.connect(database_file)
    yield store
    store.close()
