"""Audit test helpers: committed data (removed after the test) and a way to tamper.

Tampering on PostgreSQL disables the append-only triggers (and, where a test removes a
row others point to, the foreign keys) as the superuser the tests connect as, then
re-enables them; on SQLite it uses a connection without `PRAGMA foreign_keys`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from puente.cli import app as cli_app
from tests.conftest import truncate_all

AUDIT_TABLES = ("audit_entry", "audit_reference", "audit_chain")


@pytest.fixture
def committed(engine: Engine) -> Iterator[Session]:
    """A session whose commits are real; every table is emptied after the test."""
    from puente.db import session_factory

    session = session_factory()()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
        truncate_all(engine)


@contextmanager
def tampering(engine: Engine, *, foreign_keys: bool = False) -> Iterator[Connection]:
    """A committed connection on which the append-only guards are off."""
    if engine.dialect.name == "postgresql":
        which = "ALL" if foreign_keys else "USER"
        with engine.begin() as conn:
            for table in AUDIT_TABLES:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {which}"))
            yield conn
            for table in AUDIT_TABLES:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {which}"))
        return
    raw = create_engine(engine.url, poolclass=NullPool)  # no FK pragma on this one
    try:
        with raw.begin() as conn:
            yield conn
    finally:
        raw.dispose()


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.output
