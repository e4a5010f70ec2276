"""PostgreSQL's COPY for the bulk writes of an import: rows streamed in the session's
own transaction, so they commit or roll back with everything else the batch wrote.

Measured on 100,000 resources (about 860,000 index rows): an `INSERT ... VALUES`
executemany spent most of the importing processes' time building and splitting
statements, and PostgreSQL's in parsing and planning them; COPY sends the rows as data.
Constraints, indexes and foreign keys are checked row by row exactly as for an INSERT.

The rows go in COPY's binary format, each column as the type of its table's column: the
documents need no escaping on the way and no unescaping on arrival (measured, the 100,000
rows of the resource table alone: PostgreSQL's CPU 1.17-1.26 s against 1.41-1.62 s in the
text format, the sending process's 0.13-0.19 s against 0.35-0.54 s).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from psycopg import Connection, sql
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _driver(session: Session) -> Connection[Any]:
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, Connection)
    return connection


def next_keys(session: Session, table: str, column: str, count: int) -> list[int]:
    """`count` values of the sequence behind `table.column`, ascending: the keys rows
    would have got from their INSERT."""
    if count <= 0:
        return []
    values = session.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, :column)) FROM generate_series(1, :n)"),
        {"table": table, "column": column, "n": count},
    ).scalars()
    return sorted(int(value) for value in values)


class _Serialised(str):
    """What `_SerialisedJsonb` is registered for: a jsonb column's values are dumped by
    it whatever their class."""


class _SerialisedJsonb(Dumper):
    """A jsonb column's value as the text of its document, already serialised (binary
    jsonb is a version byte and the text)."""

    format = Format.BINARY
    oid = 3802  # jsonb

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + str.encode(obj)


@lru_cache(maxsize=64)
def _column_types(table: str, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, ...]:
    """The PostgreSQL type of each of `columns` of `table`, by the models' metadata:
    `bigint`, `varchar`, `timestamp with time zone`, `jsonb` and the like."""
    from puente.db import Base

    found = Base.metadata.tables[table]
    types = tuple(
        found.columns[column].type.compile(dialect=dialect).split("(", 1)[0].lower()
        for column in columns
    )
    if "json" in types:
        # psycopg would send a serialised document to a json column as a JSON string.
        raise TypeError(f"COPY takes documents for jsonb columns only: {table}")
    return types


def copy_rows(
    session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY `rows` (values in the order of `columns`) into `table`. A JSON column takes
    its document already serialised."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    types = _column_types(table, tuple(columns), session.get_bind().dialect)
    with _driver(session).cursor() as cursor:
        # On this cursor's own adapters, and by the jsonb oid (what `set_types` looks up):
        # the connection's other queries dump JSON as before.
        cursor.adapters.register_dumper(_Serialised, _SerialisedJsonb)
        with cursor.copy(statement) as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
