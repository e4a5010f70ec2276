"""Blocking keys reference their matching record through triggers, not a foreign key

Migration 0007's guarantee, for `mpi_block_key` and the `mpi_record` it belongs to: a key
naming no record is refused (SQLSTATE 23503 on PostgreSQL, "FOREIGN KEY constraint
failed" on SQLite), the record it names is locked against deletion until the writing
transaction ends (FOR KEY SHARE, as the foreign key's check locks it), a deleted record
takes its keys with it, and a record's key never changes. A bulk import COPYs about eight
keys for every Patient; the foreign key's check, a query per key, was about 45% of the
database's time on that table (measured: 33,000 keys, 220 ms without it, 490 ms with it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 19:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_mpi_block_key_resource_pk_mpi_record"

_PG_EXISTS = """
CREATE FUNCTION puente_mpi_record_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint[];
    held bigint;
BEGIN
    SELECT array_agg(DISTINCT resource_pk) INTO wanted FROM new_rows;
    SELECT count(*) INTO held
    FROM (
        SELECT 1 FROM mpi_record r WHERE r.resource_pk = ANY (wanted) FOR KEY SHARE OF r
    ) AS locked;
    IF held < coalesce(cardinality(wanted), 0) THEN
        RAISE EXCEPTION 'insert or update on table "%" names a matching record that does not exist',
            TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$
"""
_PG_CASCADE = """
CREATE FUNCTION puente_mpi_record_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mpi_block_key WHERE resource_pk IN (SELECT resource_pk FROM old_rows);
    RETURN NULL;
END
$$
"""
_PG_KEY_KEPT = """
CREATE FUNCTION puente_mpi_record_key_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the key of a matching record never changes'
        USING ERRCODE = 'foreign_key_violation';
END
$$
"""


def upgrade() -> None:
    with op.batch_alter_table("mpi_block_key") as batch_op:
        batch_op.drop_constraint(FOREIGN_KEY, type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_EXISTS)
        op.execute(_PG_CASCADE)
        op.execute(_PG_KEY_KEPT)
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER mpi_block_key_record_exists_{event.lower()} AFTER {event} "
                "ON mpi_block_key REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                "EXECUTE FUNCTION puente_mpi_record_exists()"
            )
        op.execute(
            "CREATE TRIGGER mpi_record_cascade AFTER DELETE ON mpi_record "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION puente_mpi_record_cascade()"
        )
        op.execute(
            "CREATE TRIGGER mpi_record_key_kept BEFORE UPDATE OF resource_pk ON mpi_record "
            "FOR EACH ROW WHEN (NEW.resource_pk IS DISTINCT FROM OLD.resource_pk) "
            "EXECUTE FUNCTION puente_mpi_record_key_kept()"
        )
        return
    for event in ("INSERT", "UPDATE OF resource_pk"):
        op.execute(
            f"CREATE TRIGGER mpi_block_key_record_exists_{event.split()[0].lower()} "
            f"BEFORE {event} ON mpi_block_key FOR EACH ROW BEGIN "
            "SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed') "
            "WHERE NOT EXISTS (SELECT 1 FROM mpi_record WHERE resource_pk = NEW.resource_pk); "
            "END"
        )
    op.execute(
        "CREATE TRIGGER mpi_record_cascade AFTER DELETE ON mpi_record FOR EACH ROW BEGIN "
        "DELETE FROM mpi_block_key WHERE resource_pk = OLD.resource_pk; END"
    )
    op.execute(
        "CREATE TRIGGER mpi_record_key_kept BEFORE UPDATE OF resource_pk ON mpi_record "
        "FOR EACH ROW WHEN NEW.resource_pk IS NOT OLD.resource_pk "
        "BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END"
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    triggers = (
        ("mpi_block_key_record_exists_insert", "mpi_block_key"),
        ("mpi_block_key_record_exists_update", "mpi_block_key"),
        ("mpi_record_cascade", "mpi_record"),
        ("mpi_record_key_kept", "mpi_record"),
    )
    for trigger, table in triggers:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}{f' ON {table}' if postgresql else ''}")
    if postgresql:
        for function in ("exists", "cascade", "key_kept"):
            op.execute(f"DROP FUNCTION IF EXISTS puente_mpi_record_{function}()")
    with op.batch_alter_table("mpi_block_key") as batch_op:
        batch_op.create_foreign_key(
            FOREIGN_KEY, "mpi_record", ["resource_pk"], ["resource_pk"], ondelete="CASCADE"
        )
