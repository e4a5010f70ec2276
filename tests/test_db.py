"""The shell's sessions (a savepoint never commits on its own) and its connection pool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from exchange.models import StoredResource
from puente import db as db_module
from puente.db import make_engine, session_factory, utcnow


def _row(res_id: str) -> StoredResource:
    return StoredResource(
        res_type="Patient",
        res_id=res_id,
        version=1,
        owner="hgcj",
        owner_country="MX",
        deleted=False,
        last_updated=utcnow(),
        content={"resourceType": "Patient", "id": res_id},
    )


def _count(res_id: str) -> int:
    with session_factory()() as session:
        found = session.scalar(
            select(func.count()).select_from(StoredResource).where(StoredResource.res_id == res_id)
        )
        return int(found or 0)


def test_a_released_savepoint_is_undone_by_the_transactions_rollback() -> None:
    """A batch's first entry runs in a savepoint before anything else was written: on
    SQLite that savepoint once began the database's own transaction and its release
    committed the entry, whatever the request did next."""
    session = session_factory()()
    try:
        with session.begin_nested():
            session.add(_row("hgcj-savepoint-1"))
        session.rollback()
    finally:
        session.close()
    assert _count("hgcj-savepoint-1") == 0


def test_a_released_savepoint_commits_with_its_transaction() -> None:
    session = session_factory()()
    try:
        with session.begin_nested():
            session.add(_row("hgcj-savepoint-2"))
        session.commit()
        assert _count("hgcj-savepoint-2") == 1
        stored = select(StoredResource).where(StoredResource.res_id == "hgcj-savepoint-2")
        session.delete(session.scalars(stored).one())
        session.commit()
    finally:
        session.close()
    assert _count("hgcj-savepoint-2") == 0


def _backend_of(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _terminate(database_url: str, pid: int) -> None:
    admin = create_engine(database_url, poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid}, 10000)")  # waits for it
    admin.dispose()


@pytest.fixture
def dropped(database_url: str, is_postgres: bool) -> Iterator[tuple[Engine, int]]:
    """An engine whose one pooled connection the server has just dropped, and that
    connection's backend pid."""
    if not is_postgres:
        pytest.skip("a SQLite file has no server to drop the connection")
    engine = make_engine(database_url)
    try:
        pid = _backend_of(engine)
        _terminate(database_url, pid)
        yield engine, pid
    finally:
        engine.dispose()


def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced_unnoticed(
    dropped: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, pid = dropped
    monkeypatch.setattr(db_module, "TRUSTED_FOR_SECONDS", 0.0)  # idle long enough
    assert _backend_of(engine) != pid  # no error: the ping found it dead


def test_a_connection_that_dies_inside_the_trusted_window_costs_one_statement(
    dropped: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The price of not pinging a connection used a moment ago (HikariCP's trade too):
    if the server dropped it meanwhile, that one statement fails; the next gets a new one."""
    engine, pid = dropped
    monkeypatch.setattr(db_module, "TRUSTED_FOR_SECONDS", 3600.0)  # used a moment ago
    with pytest.raises(OperationalError), engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    assert _backend_of(engine) != pid
