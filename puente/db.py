"""Engine, sessions and column types shared by every domain.

The shell owns the transaction: domains receive a `Session`, may `flush`, never commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.types import TypeDecorator

from puente.settings import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")
# Surrogate keys: 64-bit on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY
# is the autoincrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC instant on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC instant is required")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # LIKE 'prefix%' may then use an ordinary index; the values searched this way are
    # stored case-folded already (exchange/indexing.py), so nothing is lost.
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()


def _begin_before_savepoint(connection: Connection, _name: str | None) -> None:
    """pysqlite opens a transaction only before INSERT/UPDATE/DELETE, so a SAVEPOINT that
    comes first (a batch entry's, an import line's) starts SQLite's own transaction, whose
    RELEASE then commits: the request's later rollback could not undo it. BEGIN first.

    IMMEDIATE: savepoints here always precede writes, and a deferred transaction that
    read before another writer committed cannot write at all (SQLite answers "database is
    locked" at once, without waiting); taking the single write lock first makes such
    writers queue (busy timeout) and then read what the other committed."""
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# A pooled connection returned less than this long ago is handed out without a ping, as
# HikariCP does (its aliveBypassWindowMs is 500 ms). Pinging every checkout cost every
# request a round trip: one of the four of a read by id (ping, BEGIN, SELECT, COMMIT).
# A connection that dies inside the window fails its request's first statement, and
# SQLAlchemy then replaces the pool's connections.
TRUSTED_FOR_SECONDS = 0.5
_RETURNED_AT = "puente_returned_at"


def _ping_when_idle(engine: Engine) -> None:
    dialect = engine.dialect

    def checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, _: PoolProxiedConnection
    ) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is not None and time.monotonic() - returned < TRUSTED_FOR_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("pooled connection did not answer a ping") from exc

    def checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    event.listen(engine.pool, "checkout", checkout)
    event.listen(engine.pool, "checkin", checkin)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _begin_before_savepoint)
        return engine
    # psycopg prepares a statement after five runs, and PostgreSQL may then switch it to a
    # generic plan. A search's plan depends on its values (`LIKE 'garcia%'` can use the
    # index range only when the prefix is known): measured on 100,000 patients, generic
    # plans took name+birthdate searches from 15 ms to seconds. Always plan for the values.
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_use_lifo=True,  # the connection used last, which needs no ping, goes out first
        connect_args={"options": "-c plan_cache_mode=force_custom_plan"},
    )
    _ping_when_idle(engine)
    return engine


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


@lru_cache(maxsize=8)
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False, autoflush=True)


def session_factory() -> sessionmaker[Session]:
    return _factory(get_settings().database_url)


# Connections ANALYZE runs on at once, a table at a time, largest first (as `vacuumdb
# --analyze-only --jobs` does): measured after importing 100,000 resources, 0.53-0.61 s on
# two against 0.81-0.87 s for one ANALYZE of the database.
ANALYZE_CONNECTIONS = 2
_TABLES_BY_SIZE = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = current_schema()
ORDER BY pg_total_relation_size(c.oid) DESC
"""


def refresh_statistics() -> bool:
    """PostgreSQL: ANALYZE the tables of the current schema (Puente's), so that the
    planner's row estimates know what a bulk load just wrote; whether it ran. Autovacuum
    would, a minute or more later, and not at all where it is off: until then a search may
    take a plan made for empty tables (measured after importing 100,000 Patients:
    name+birthdate searches spent 4.5 ms of database CPU each without statistics, 0.7 ms
    with them). SQLite, the embedded default for small data sets, is left to its own
    planner."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        tables = list(conn.exec_driver_sql(_TABLES_BY_SIZE).scalars())

    def analyze(table: str) -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"ANALYZE {table}")

    with ThreadPoolExecutor(ANALYZE_CONNECTIONS) as pool:
        for done in [pool.submit(analyze, table) for table in tables]:
            done.result()
    return True


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction for a CLI command or a task: committed on success, else rolled back."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


log = logging.getLogger("puente.db")
T = TypeVar("T")

# PostgreSQL's SQLSTATEs for a transaction it aborted so that others could go on: a
# deadlock it broke (40P01) or a serialization failure (40001). Run again, it succeeds.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
# Runs of one transaction before its caller is told it failed, and the first pause.
RETRY_ATTEMPTS = 4
RETRY_PAUSE_SECONDS = 0.05


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says the transaction lost to a concurrent one and would succeed if
    run again: PostgreSQL's deadlock or serialization failure (wrapped by SQLAlchemy, or
    the driver's own from a COPY), or SQLite's `database is locked`."""
    seen: BaseException | None = exc
    for _ in range(4):  # the exception, what it wraps, and what caused those
        if seen is None:
            return False
        if getattr(seen, "sqlstate", None) in TRANSIENT_SQLSTATES:
            return True
        if isinstance(seen, sqlite3.OperationalError) and "database is locked" in str(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def pause_before_retry(attempt: int) -> None:
    """Wait before run `attempt + 1`: exponential, with full jitter so that the two
    transactions that met do not meet again at the same moment."""
    time.sleep(random.uniform(0, RETRY_PAUSE_SECONDS * 2**attempt))  # noqa: S311 - jitter


def retrying(
    work: Callable[[Session], T],
    *,
    attempts: int = RETRY_ATTEMPTS,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> T:
    """`work` in its own `unit_of_work`, run again (up to `attempts` runs in all) while
    it fails with an error `retry_on` accepts; the last such error is raised. `work`
    must keep its effects in the session, which each run starts afresh."""
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work() as session:
                return work(session)
        except Exception as exc:
            if attempt >= attempts or not retry_on(exc):
                raise
            log.warning("transaction_retried", extra={"attempt": attempt})
        pause_before_retry(attempt)
    raise AssertionError("unreachable")  # pragma: no cover
