"""DAG rows: valid versions, invalid versions keeping the last valid spec, pause, delete."""

from __future__ import annotations

from datetime import UTC

from controller.store import Store
from tests.store.rows import SPEC, add_dag

NEW_SPEC = {**SPEC, "tasks": [{"name": "extract"}]}


def test_a_valid_dag_round_trips(store: Store) -> None:
    add_dag(store)
    with store.transaction() as uow:
        dag = uow.get_dag("daily-sales")
    assert dag is not None
    assert dag.path == "dags/daily-sales.yaml"
    assert dag.revision == dag.spec_revision == "a" * 40
    assert dag.spec_hash == "h1"
    assert dag.spec == SPEC
    assert list(dag.spec) == list(SPEC)  # key order survives, spec snapshots stay readable
    assert dag.valid
    assert dag.error is None
    assert not dag.paused
    assert not dag.deleted
    assert dag.schedulable
    assert dag.updated_at.tzinfo is UTC


def test_an_invalid_version_keeps_the_last_valid_spec_and_shows_the_error(store: Store) -> None:
    add_dag(store)
    with store.transaction() as uow:
        dag = uow.mark_dag_invalid(
            name="daily-sales",
            path="dags/daily-sales.yaml",
            revision="b" * 40,
            error="dags/daily-sales.yaml:3:5: unknown field",
        )
    assert not dag.valid
    assert dag.error == "dags/daily-sales.yaml:3:5: unknown field"
    assert dag.revision == "b" * 40
    assert dag.spec_revision == "a" * 40
    assert dag.spec == SPEC
    assert dag.schedulable


def test_a_dag_never_valid_has_no_spec_and_is_not_schedulable(store: Store) -> None:
    with store.transaction() as uow:
        dag = uow.mark_dag_invalid(
            name="broken", path="dags/broken.yaml", revision="c" * 40, error="x"
        )
    assert dag.spec is None
    assert dag.spec_revision is None
    assert not dag.schedulable


def test_a_new_valid_version_replaces_spec_and_clears_the_error(store: Store) -> None:
    add_dag(store)
    with store.transaction() as uow:
        uow.mark_dag_invalid(name="daily-sales", path="p", revision="b" * 40, error="bad")
        dag = uow.upsert_dag(
            name="daily-sales", path="p", revision="c" * 40, spec_hash="h2", spec=NEW_SPEC
        )
    assert dag.valid
    assert dag.error is None
    assert dag.spec == NEW_SPEC
    assert dag.spec_revision == dag.revision == "c" * 40


def test_pausing_survives_new_versions(store: Store) -> None:
    add_dag(store)
    with store.transaction() as uow:
        assert uow.set_dag_paused("daily-sales", True)
        dag = uow.upsert_dag(
            name="daily-sales", path="p", revision="c" * 40, spec_hash="h2", spec=NEW_SPEC
        )
    assert dag.paused
    assert not dag.schedulable


def test_pausing_an_unknown_dag_reports_false(store: Store) -> None:
    with store.transaction() as uow:
        assert not uow.set_dag_paused("nope", True)
        assert not uow.mark_dag_deleted("nope")


def test_a_deleted_dag_keeps_its_row_and_returns_when_its_file_does(store: Store) -> None:
    add_dag(store)
    add_dag(store, "hourly")
    with store.transaction() as uow:
        assert uow.mark_dag_deleted("daily-sales")
    with store.transaction() as uow:
        assert [dag.name for dag in uow.list_dags()] == ["hourly"]
        assert [dag.name for dag in uow.list_dags(include_deleted=True)] == [
            "daily-sales",
            "hourly",
        ]
        deleted = uow.get_dag("daily-sales")
        assert deleted is not None
        assert deleted.deleted
        assert not deleted.schedulable
    add_dag(store)
    with store.transaction() as uow:
        restored = uow.get_dag("daily-sales")
    assert restored is not None
    assert not restored.deleted
