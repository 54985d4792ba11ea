"""Connecting to the database: URL resolution, engine settings, and migrations.

Three traps this module exists to avoid:

- A controller that starts on an unmigrated (or older) schema fails later, mid-run,
  with an obscure SQL error. `require_migrated` refuses at startup instead, naming the
  command that fixes it.
- Connections without timeouts turn a network partition into a hung controller. On
  PostgreSQL every connection has a connect timeout, a statement timeout and a lock
  timeout, and the pool pre-pings so a restarted server is not a burst of errors.
- SQLite's default transaction takes its write lock lazily, so two writers that both
  read first deadlock and one fails at once with "database is locked" (the busy timeout
  does not apply to a lock upgrade). Every transaction here begins with
  `BEGIN IMMEDIATE`, so writers queue on the busy timeout instead; WAL lets readers
  proceed meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

CONNECT_TIMEOUT_SECONDS = 10
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 10_000
SQLITE_BUSY_TIMEOUT_SECONDS = 30


class NotMigratedError(RuntimeError):
    """The database schema is missing, older or newer than this version of kubedag."""


def display_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine_for(url: str) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            # SQLAlchemy 2.1 defaults to psycopg 3; kubedag ships psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        return _postgresql_engine(parsed)
    if backend == "sqlite":
        return _sqlite_engine(url)
    raise ValueError(
        f"unsupported database URL {display_url(url)}: use postgresql://... in production "
        "or sqlite:///PATH for the embedded default"
    )


def _postgresql_engine(url: URL) -> Engine:
    options = (
        f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS} "
        "-c idle_in_transaction_session_timeout=60000 -c timezone=UTC"
    )
    return create_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_timeout=30,
        pool_recycle=1800,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "options": options,
            "application_name": "kubedag",
        },
    )


def _sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL; None for in-memory and URI-style databases."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database:
        return None
    if database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _sqlite_engine(url: str) -> Engine:
    path = _sqlite_file(url)
    if path is not None:
        # SQLite creates the file but not its directory; the default lives in a data
        # directory that a fresh machine does not have yet.
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level hands transaction control to the "begin"
        # listener below, which is the documented way to get BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The schema revision this version of kubedag needs."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def upgrade(url: str) -> None:
    """Migrate the database at `url` to the newest schema; a no-op when it is current."""
    engine = create_engine_for(url)
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine) -> None:
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(url: str) -> str | None:
    """The schema revision of the database at `url`, or None when it was never migrated."""
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        # Looking must not create an empty database file (and its directory).
        return None
    engine = create_engine_for(url)
    try:
        return engine_revision(engine)
    finally:
        engine.dispose()


def engine_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        revision: str | None = MigrationContext.configure(connection).get_current_revision()
        return revision


def require_migrated(engine: Engine) -> None:
    """Refuse to run against a schema other than the one this kubedag was built for."""
    current = engine_revision(engine)
    head = head_revision()
    if current == head:
        return
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise NotMigratedError(
            f"the database {where} has no kubedag schema; run `kubedag db upgrade` "
            "(with the same --database-url) to create it"
        )
    known = {
        script.revision
        for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()
    }
    if current in known:
        raise NotMigratedError(
            f"the database {where} is at schema revision {current}, but this kubedag needs "
            f"{head}; run `kubedag db upgrade` to migrate it"
        )
    raise NotMigratedError(
        f"the database {where} is at schema revision {current}, which this kubedag does not "
        f"know (it needs {head}); it was migrated by a newer kubedag, so upgrade kubedag"
    )
