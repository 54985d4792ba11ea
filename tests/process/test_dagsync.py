"""DAG sync: a real bare repository, real git-sync, a real store, commit by commit."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from controller.gitsync import GitSync, GitSyncConfig
from controller.metrics import Metrics
from controller.process.dagsync import DagSync, SyncOutcome, repository_root
from controller.spec.podpolicy import PodPolicy
from controller.store import DagRecord, Store
from tests.gitsync.conftest import Remote, make_remote


def dag_yaml(name: str, *, schedule: str = "0 3 * * *", command: str = "true") -> str:
    return f"""\
apiVersion: kubedag.io/v1
kind: DAG
metadata:
  name: {name}
spec:
  schedule: "{schedule}"
  defaults:
    image: python:3.12-slim
  tasks:
    - name: only
      command: [sh, -c, "{command}"]
"""


BROKEN = """\
apiVersion: kubedag.io/v1
kind: DAG
metadata:
  name: nightly
spec:
  schedule: "every night"
  tasks:
    - name: only
      dependsOn: [missing]
      image: python:3.12-slim
      command: [sh, -c, "true"]
"""


class RecordingSchedule:
    """The sink DagSync hands the store's DAGs to, keeping the schedulable set."""

    def __init__(self) -> None:
        self.scheduled: dict[str, str] = {}

    def apply(self, dags: Iterable[DagRecord]) -> None:
        self.scheduled = {
            dag.name: str((dag.spec or {}).get("schedule")) for dag in dags if dag.schedulable
        }


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path)


class Harness:
    def __init__(
        self, *, remote: Remote, store: Store, root: Path, policy: PodPolicy | None = None
    ) -> None:
        self.remote = remote
        self.store = store
        self.metrics = Metrics()
        self.schedule = RecordingSchedule()
        config = GitSyncConfig(
            repo_url=remote.url, root=root, dags_path="dags", command_timeout=20.0
        )
        self.gitsync = GitSync(config)
        self.dagsync = DagSync(
            store, dags_path="dags", metrics=self.metrics, schedule=self.schedule, policy=policy
        )

    def push(self, files: dict[str, str | None]) -> SyncOutcome:
        sha = self.remote.commit(files)
        result = self.gitsync.sync_once()
        assert result.revision == sha
        return self.dagsync.apply_revision(revision=result.revision, dags_dir=result.dags_dir)

    def dag(self, name: str) -> DagRecord:
        with self.store.transaction() as uow:
            record = uow.get_dag(name)
        assert record is not None
        return record

    def invalid_gauge(self) -> float | None:
        return self.metrics.registry.get_sample_value("kubedag_invalid_dags")


@pytest.fixture
def harness(remote: Remote, store: Store, tmp_path: Path) -> Harness:
    return Harness(remote=remote, store=store, root=tmp_path / "sync")


def test_added_dag_is_stored_at_its_repository_path_and_scheduled(harness: Harness) -> None:
    outcome = harness.push({"dags/nightly.yaml": dag_yaml("nightly"), "README": "hi"})

    record = harness.dag("nightly")
    assert record.path == "dags/nightly.yaml"
    assert record.spec_revision == outcome.revision
    assert record.valid
    assert record.schedulable
    assert harness.schedule.scheduled == {"nightly": "0 3 * * *"}
    assert [(c.dag, c.change) for c in outcome.changes] == [("nightly", "added")]


def test_changed_schedule_replaces_the_job(harness: Harness) -> None:
    harness.push({"dags/nightly.yaml": dag_yaml("nightly")})
    outcome = harness.push({"dags/nightly.yaml": dag_yaml("nightly", schedule="30 4 * * *")})

    assert harness.dag("nightly").spec is not None
    assert harness.schedule.scheduled == {"nightly": "30 4 * * *"}
    assert [(c.dag, c.change) for c in outcome.changes] == [("nightly", "updated")]


def test_unchanged_dag_moves_to_the_new_commit_without_a_change(harness: Harness) -> None:
    harness.push({"dags/nightly.yaml": dag_yaml("nightly")})
    outcome = harness.push({"jobs/script.py": "print('new code')\n"})

    assert outcome.changes == ()
    assert harness.dag("nightly").spec_revision == outcome.revision


def test_broken_version_is_reported_and_the_last_valid_one_stays_scheduled(
    harness: Harness,
) -> None:
    good = harness.push({"dags/nightly.yaml": dag_yaml("nightly")})
    broken = harness.push({"dags/nightly.yaml": BROKEN})

    record = harness.dag("nightly")
    assert not record.valid
    assert record.revision == broken.revision
    assert record.spec_revision == good.revision
    assert record.error is not None
    assert "dags/nightly.yaml:" in record.error
    assert "missing" in record.error
    assert harness.schedule.scheduled == {"nightly": "0 3 * * *"}
    assert harness.invalid_gauge() == 1.0


def test_fixed_version_clears_the_error(harness: Harness) -> None:
    harness.push({"dags/nightly.yaml": dag_yaml("nightly")})
    harness.push({"dags/nightly.yaml": BROKEN})
    fixed = harness.push({"dags/nightly.yaml": dag_yaml("nightly", schedule="15 2 * * *")})

    record = harness.dag("nightly")
    assert record.valid
    assert record.error is None
    assert record.spec_revision == fixed.revision
    assert harness.schedule.scheduled == {"nightly": "15 2 * * *"}
    assert harness.invalid_gauge() == 0.0


def test_deleted_file_unschedules_its_dag_and_keeps_the_row(harness: Harness) -> None:
    harness.push({"dags/nightly.yaml": dag_yaml("nightly"), "dags/other.yaml": dag_yaml("other")})
    outcome = harness.push({"dags/nightly.yaml": None})

    record = harness.dag("nightly")
    assert record.deleted
    assert not record.schedulable
    assert harness.schedule.scheduled == {"other": "0 3 * * *"}
    assert [(c.dag, c.change) for c in outcome.changes] == [("nightly", "deleted")]


def test_one_bad_file_does_not_block_the_others(harness: Harness) -> None:
    outcome = harness.push(
        {
            "dags/broken.yaml": "apiVersion: kubedag.io/v1\nkind: DAG\nmetadata: [unclosed\n",
            "dags/good.yaml": dag_yaml("good"),
        }
    )

    assert harness.schedule.scheduled == {"good": "0 3 * * *"}
    assert outcome.invalid_files == 1
    assert harness.invalid_gauge() == 1.0


def test_unreadable_file_keeps_the_dag_stored_at_its_path(harness: Harness) -> None:
    harness.push({"dags/nightly.yaml": dag_yaml("nightly")})
    harness.push({"dags/nightly.yaml": "apiVersion: kubedag.io/v1\nkind: DAG\nmetadata: [x\n"})

    record = harness.dag("nightly")
    assert not record.deleted
    assert not record.valid
    assert harness.schedule.scheduled == {"nightly": "0 3 * * *"}


def test_renamed_dag_deletes_the_old_name_and_adds_the_new(harness: Harness) -> None:
    harness.push({"dags/nightly.yaml": dag_yaml("nightly")})
    outcome = harness.push({"dags/nightly.yaml": dag_yaml("nightly-v2")})

    assert harness.dag("nightly").deleted
    assert sorted((c.dag, c.change) for c in outcome.changes) == [
        ("nightly", "deleted"),
        ("nightly-v2", "added"),
    ]


def test_restored_file_brings_its_dag_back(harness: Harness) -> None:
    harness.push({"dags/nightly.yaml": dag_yaml("nightly"), "dags/.keep": ""})
    harness.push({"dags/nightly.yaml": None})
    outcome = harness.push({"dags/nightly.yaml": dag_yaml("nightly")})

    assert not harness.dag("nightly").deleted
    assert harness.schedule.scheduled == {"nightly": "0 3 * * *"}
    assert [(c.dag, c.change) for c in outcome.changes] == [("nightly", "restored")]


def test_repository_root_walks_up_the_dags_path() -> None:
    assert repository_root(Path("/c/rev/a/b"), "a/b") == Path("/c/rev")
    assert repository_root(Path("/c/rev"), ".") == Path("/c/rev")


def test_a_dag_asking_for_the_controllers_powers_is_refused_where_it_asks(
    remote: Remote, store: Store, tmp_path: Path
) -> None:
    harness = Harness(
        remote=remote,
        store=store,
        root=tmp_path / "sync",
        policy=PodPolicy(allowed_secrets=frozenset({"warehouse"})),
    )
    good = harness.push({"dags/nightly.yaml": dag_yaml("nightly")})
    grabby = dag_yaml("nightly") + (
        "      podOverrides: {serviceAccountName: kubedag-controller}\n"
        "      envFrom: [{secretRef: {name: kubedag-database}}]\n"
    )
    harness.push({"dags/nightly.yaml": grabby})

    record = harness.dag("nightly")
    assert not record.valid
    assert record.spec_revision == good.revision
    assert record.error is not None
    assert "dags/nightly.yaml:12:42: serviceAccountName" in record.error
    assert "the controller's own ServiceAccount" in record.error
    assert "dags/nightly.yaml:13:" in record.error
    assert "Secret 'kubedag-database' is not in the controller's executor.allowedSecrets" in (
        record.error
    )
