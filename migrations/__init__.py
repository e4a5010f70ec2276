"""Alembic environment and versions (one head)."""
