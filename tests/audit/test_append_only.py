"""On PostgreSQL the database itself refuses to change or remove audit rows
(45 CFR 164.312(b); the triggers of the initial migration)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from puente.audit.sealer import seal
from puente.db import session_factory
from tests.factories import audit_entry

STATEMENTS = {
    "audit_entry": ("UPDATE audit_entry SET agent = 'x'", "DELETE FROM audit_entry"),
    "audit_chain": ("UPDATE audit_chain SET hash = 'x'", "DELETE FROM audit_chain"),
    "audit_reference": ("UPDATE audit_reference SET kind = 'x'", "DELETE FROM audit_reference"),
}
CASES = [
    (table, statement)
    for table, (update, delete) in STATEMENTS.items()
    for statement in (update, delete, f"TRUNCATE {table} CASCADE")
]


@pytest.fixture
def sealed_rows(engine: Engine, is_postgres: bool) -> Engine:
    if not is_postgres:
        pytest.skip("the append-only triggers exist on PostgreSQL only")
    with session_factory()() as session:
        audit_entry(session, patients=("Patient/p1",))
        session.flush()
        seal(session)
        session.commit()
    return engine


@pytest.mark.postgres
@pytest.mark.parametrize(("table", "statement"), CASES)
def test_postgres_refuses_changing_audit_rows(
    sealed_rows: Engine, committed: Session, table: str, statement: str
) -> None:
    count = text(f"SELECT count(*) FROM {table}")  # noqa: S608 - a fixed table name
    with sealed_rows.connect() as conn:
        before = conn.execute(count).scalar_one()
        conn.rollback()
        with pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))
        conn.rollback()
        assert conn.execute(count).scalar_one() == before > 0
