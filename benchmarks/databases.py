"""A fresh database for a benchmark, and the repository root its processes start in.

Apart from the cluster benchmarks' helpers, so that a benchmark that needs no cluster
(bench_memory) does not load the cluster tooling, whose modules would count in the
resident set it measures.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from controller.store import upgrade

SERVER_URL_ENV = "KUBEDAG_BENCH_DATABASE_URL"
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def database(backend: str, scratch: Path) -> Iterator[str]:
    """A fresh, migrated database of `backend`, dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{scratch / 'kubedag.db'}"
        upgrade(url)
        yield url
        return
    server = make_url(os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL)).set(
        drivername="postgresql+psycopg2"
    )
    name = f"kubedag_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
