"""The shell's sessions: a savepoint never commits on its own."""

from __future__ import annotations

from sqlalchemy import func, select

from exchange.models import StoredResource
from puente.db import session_factory, utcnow


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
