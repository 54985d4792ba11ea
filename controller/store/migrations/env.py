"""Alembic environment: runs migrations on the connection the caller hands over.

kubedag builds its Alembic configuration in code (`controller.store.database`), so no
alembic.ini has to ship or be found at run time, and the engine settings (timeouts,
SQLite's BEGIN IMMEDIATE) are the same for migrations as for normal work.

On PostgreSQL a transaction-scoped advisory lock serialises migrations, so two
controllers starting at once cannot both try to create the same tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from controller.store.models import Base

# An arbitrary constant that names "the kubedag schema migration" among advisory locks.
MIGRATION_LOCK_KEY = 0x6B756265646167


def run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "kubedag migrations run through `kubedag db upgrade`, which supplies the connection"
    )
run_migrations(connection)
