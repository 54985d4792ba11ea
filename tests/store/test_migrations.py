"""Schema creation, the `kubedag db` commands, and refusing an unmigrated database."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from controller.cli import main
from controller.settings.loading import database_url_for, load_config
from controller.store import (
    NotMigratedError,
    Store,
    create_engine_for,
    current_revision,
    display_url,
    head_revision,
    require_migrated,
    upgrade,
)
from controller.store.models import Base


def run_cli(*argv: str) -> int:
    return main(list(argv))


def test_upgrade_creates_the_schema_on_an_empty_database(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()


def test_migrations_create_exactly_what_the_models_declare(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_require_migrated_refuses_an_unmigrated_database(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        with pytest.raises(NotMigratedError, match=r"run `kubedag db upgrade`"):
            require_migrated(engine)
    finally:
        engine.dispose()


def test_store_connect_refuses_an_unmigrated_database(database_url: str) -> None:
    with pytest.raises(NotMigratedError, match="has no kubedag schema"):
        Store.connect(database_url)


def test_store_connect_accepts_a_migrated_database(database_url: str) -> None:
    upgrade(database_url)
    store = Store.connect(database_url)
    try:
        with store.transaction() as uow:
            assert uow.list_dags() == []
    finally:
        store.close()


def test_cli_upgrade_migrates_and_current_reports_it(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("db", "current", "--database-url", database_url) == 1
    assert "run `kubedag db upgrade`" in capsys.readouterr().out

    assert run_cli("db", "upgrade", "--database-url", database_url) == 0
    assert f"upgraded from empty to revision {head_revision()}" in capsys.readouterr().out

    assert run_cli("db", "current", "--database-url", database_url) == 0
    assert f"revision {head_revision()} (current)" in capsys.readouterr().out


def test_cli_upgrade_reads_the_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("KUBEDAG_DATABASE_URL", url)
    assert run_cli("db", "upgrade") == 0
    assert current_revision(url) == head_revision()


def test_cli_reports_an_unreachable_database_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql://kubedag:secret@127.0.0.1:1/kubedag"
    assert run_cli("db", "upgrade", "--database-url", url) == 2
    error = capsys.readouterr().err
    assert error.startswith("kubedag db: cannot use the database postgresql://kubedag:***@")
    assert "secret" not in error
    assert len(error.strip().splitlines()) == 1


def test_the_default_database_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    config = load_config(environ={"KUBEDAG_DATA_DIR": str(tmp_path / "data")})
    url = database_url_for(config)
    assert url == f"sqlite:///{tmp_path / 'data' / 'kubedag.db'}"
    upgrade(url)
    assert (tmp_path / "data" / "kubedag.db").exists()


def test_the_data_dir_defaults_to_the_users_share_directory() -> None:
    expected = Path.home() / ".local" / "share" / "kubedag" / "kubedag.db"
    assert database_url_for(load_config(environ={})) == f"sqlite:///{expected}"


def test_the_flag_beats_the_environment_which_beats_the_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text("databaseUrl: sqlite:////from/file.db\n")
    env = {"KUBEDAG_DATABASE_URL": "sqlite:////from/env.db"}
    flag = {"databaseUrl": "sqlite:////from/flag.db"}
    resolve = database_url_for
    assert resolve(load_config(path=str(config_file), environ={})) == "sqlite:////from/file.db"
    assert resolve(load_config(path=str(config_file), environ=env)) == "sqlite:////from/env.db"
    flagged = load_config(path=str(config_file), environ=env, overrides=flag)
    assert resolve(flagged) == "sqlite:////from/flag.db"


def test_an_unsupported_database_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unsupported database URL mysql://root:\\*\\*\\*@db/x"):
        create_engine_for("mysql://root:pw@db/x")


def test_display_url_masks_the_password() -> None:
    assert display_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def test_asking_for_the_revision_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "kubedag.db"
    assert current_revision(f"sqlite:///{path}") is None
    assert not path.parent.exists()


def test_require_migrated_refuses_a_schema_from_a_newer_kubedag(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine_for(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(NotMigratedError, match="migrated by a newer kubedag"):
            require_migrated(engine)
    finally:
        engine.dispose()
