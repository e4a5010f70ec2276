"""String search index usable by LIKE 'prefix%' on PostgreSQL

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 08:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_idx_string_lookup", table_name="idx_string")
    op.create_index(
        "ix_idx_string_lookup",
        "idx_string",
        ["res_type", "param", "value"],
        postgresql_ops={"value": "varchar_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_idx_string_lookup", table_name="idx_string")
    op.create_index("ix_idx_string_lookup", "idx_string", ["res_type", "param", "value"])
