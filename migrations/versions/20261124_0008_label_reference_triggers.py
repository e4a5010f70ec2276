"""Security label rows reference their resource through triggers, not foreign keys

Migration 0007's guarantee, extended to `resource_label` and `resource_label_state`: a
row naming no resource is refused, the resource it names is locked against deletion until
the writing transaction ends, and a deleted resource takes its rows with it. A bulk import
writes a label state row for every resource it creates (COPYed on PostgreSQL), and the
foreign keys' per-row checks were again a large part of the database's work.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 11:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = (
    "resource_version",
    "idx_string",
    "idx_token",
    "idx_date",
    "idx_reference",
    "idx_quantity",
)
NEW = ("resource_label", "resource_label_state")


def _pg_cascade(tables: Sequence[str]) -> str:
    return (
        "CREATE OR REPLACE FUNCTION puente_resource_cascade() RETURNS trigger "
        "LANGUAGE plpgsql AS $$\nBEGIN\n"
        + "".join(
            f"    DELETE FROM {table} WHERE resource_pk IN (SELECT pk FROM old_rows);\n"
            for table in tables
        )
        + "    RETURN NULL;\nEND\n$$"
    )


def _sqlite_cascade(tables: Sequence[str]) -> str:
    return (
        "CREATE TRIGGER resource_cascade AFTER DELETE ON resource FOR EACH ROW BEGIN "
        + "".join(f"DELETE FROM {table} WHERE resource_pk = OLD.pk; " for table in tables)
        + "END"
    )


def _foreign_key(table: str) -> str:
    return f"fk_{table}_resource_pk_resource"


def upgrade() -> None:
    for table in NEW:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(_foreign_key(table), type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_cascade(BEFORE + NEW))
        for table in NEW:
            for event in ("INSERT", "UPDATE"):
                op.execute(
                    f"CREATE TRIGGER {table}_resource_exists_{event.lower()} AFTER {event} "
                    f"ON {table} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                    "EXECUTE FUNCTION puente_resource_exists()"
                )
        return
    for table in NEW:
        for event in ("INSERT", "UPDATE OF resource_pk"):
            op.execute(
                f"CREATE TRIGGER {table}_resource_exists_{event.split()[0].lower()} "
                f"BEFORE {event} ON {table} FOR EACH ROW BEGIN "
                "SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed') "
                "WHERE NOT EXISTS (SELECT 1 FROM resource WHERE pk = NEW.resource_pk); END"
            )
    op.execute("DROP TRIGGER resource_cascade")
    op.execute(_sqlite_cascade(BEFORE + NEW))


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in NEW:
        for event in ("insert", "update"):
            on = f" ON {table}" if postgresql else ""
            op.execute(f"DROP TRIGGER IF EXISTS {table}_resource_exists_{event}{on}")
    if postgresql:
        op.execute(_pg_cascade(BEFORE))
    else:
        op.execute("DROP TRIGGER resource_cascade")
        op.execute(_sqlite_cascade(BEFORE))
    for table in NEW:
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_foreign_key(
                _foreign_key(table), "resource", ["resource_pk"], ["pk"], ondelete="CASCADE"
            )
