"""Test fixtures: one database per xdist worker, built by `alembic upgrade head`.

`PUENTE_TEST_DATABASE_URL` names a PostgreSQL server database (e.g.
`postgresql+psycopg://postgres@127.0.0.1:5432/postgres`) to run on PostgreSQL; each worker
then gets its own database `puente_test_<worker>`. Without it, each worker gets a SQLite file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

TEST_SECRET = "test-secret-key-0123456789abcdef0123456789abcdef"
os.environ.setdefault("PUENTE_SECRET_KEY", TEST_SECRET)
os.environ.setdefault("PUENTE_BASE_URL", "http://testserver")
os.environ.pop("PUENTE_BROKER_URL", None)
os.environ["PUENTE_ENV"] = "development"


def _worker_database(worker_id: str, tmp_root: Path) -> str:
    server = os.environ.get("PUENTE_TEST_DATABASE_URL")
    if not server:
        return f"sqlite:///{tmp_root / f'puente-{worker_id}.db'}"
    url = make_url(server)
    # The pid keeps two runs on one server (a developer's and CI's) apart.
    name = f"puente_test_{worker_id}_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", autouse=True)
def database_url(worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from puente.db import engine_for
    from puente.migrate import upgrade
    from puente.settings import get_settings

    url = _worker_database(worker_id, tmp_path_factory.getbasetemp())
    os.environ["PUENTE_DATABASE_URL"] = url
    get_settings.cache_clear()
    upgrade(url)
    yield url
    engine_for(url).dispose()
    if url.startswith("postgresql"):
        _drop_database(url)


def _drop_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
def engine(database_url: str) -> Engine:
    from puente.db import engine_for

    return engine_for(database_url)


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test (services flush, tests look)."""
    connection: Connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


def truncate_all(engine: Engine) -> None:
    from puente.models import Base  # every domain's tables registered

    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            audit = [t for t in tables if t.startswith("audit_")]
            for table in audit:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            for table in audit:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - our own table names


@pytest.fixture(scope="session")
def app(database_url: str) -> FastAPI:
    from puente.app import create_app

    return create_app()


@pytest.fixture
def client(app: FastAPI, engine: Engine) -> Iterator[TestClient]:
    """An HTTP client on the app; the data it commits is removed after the test."""
    from puente.settings import get_settings

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    truncate_all(engine)
    get_settings.cache_clear()
